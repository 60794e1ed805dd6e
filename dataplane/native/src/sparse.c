/*
 * Sparse-file primitives Node's fs module lacks: extent discovery (FIEMAP, SEEK_DATA / SEEK_HOLE) and
 * FALLOC_FL_PUNCH_HOLE. Kept tiny and synchronous: each call is one or a few syscalls on an fd the
 * caller already owns, so a thread-pool hop would cost more than the call itself.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <node_api.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

#include "exports.h"

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, "ERR_SHORTHORN_NATIVE", msg);
  return NULL;
}

static int get_i64(napi_env env, napi_value v, int64_t *out) {
  return napi_get_value_int64(env, v, out) == napi_ok;
}

/* seek(fd, offset, whence) where whence is 3 (SEEK_DATA) or 4 (SEEK_HOLE); returns -1 on ENXIO. */
static napi_value do_seek(napi_env env, napi_callback_info info, int whence) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd, off;
  if (argc < 2 || !get_i64(env, argv[0], &fd) || !get_i64(env, argv[1], &off)) {
    napi_throw_type_error(env, NULL, "expected (fd, offset)");
    return NULL;
  }
  off_t r = lseek((int)fd, (off_t)off, whence);
  napi_value out;
  if (r < 0) {
    if (errno == ENXIO) {
      napi_create_int64(env, -1, &out);
      return out;
    }
    return throw_errno(env, whence == SEEK_DATA ? "lseek(SEEK_DATA)" : "lseek(SEEK_HOLE)", errno);
  }
  napi_create_int64(env, (int64_t)r, &out);
  return out;
}

static napi_value seek_data(napi_env env, napi_callback_info info) { return do_seek(env, info, SEEK_DATA); }
static napi_value seek_hole(napi_env env, napi_callback_info info) { return do_seek(env, info, SEEK_HOLE); }

/* punchHole(fd, offset, length): deallocate, keep the apparent size. */
static napi_value punch_hole(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd, off, len;
  if (argc < 3 || !get_i64(env, argv[0], &fd) || !get_i64(env, argv[1], &off) || !get_i64(env, argv[2], &len)) {
    napi_throw_type_error(env, NULL, "expected (fd, offset, length)");
    return NULL;
  }
  if (len > 0 && fallocate((int)fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) != 0)
    return throw_errno(env, "fallocate(PUNCH_HOLE)", errno);
  return NULL;
}

/*
 * dataExtents(fd, start, end): the allocated ranges of [start, end) as a Float64Array
 * [off0, len0, off1, len1, ...], adjacent ranges merged. FIEMAP (as Longhorn) answers up to
 * FIEMAP_BATCH extents per ioctl, where SEEK_DATA/SEEK_HOLE costs two syscalls per extent: a layer
 * fragmented into 4 KiB runs has 262,144 of them per GiB. Extents not yet written back (delalloc) and
 * unwritten ones count as data: they may hold dirty pages, and at worst they read as zeros. Filesystems
 * without FIEMAP (tmpfs) fall back to SEEK_DATA/SEEK_HOLE.
 */
#include <linux/fiemap.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#define FIEMAP_BATCH 512

struct extent_list {
  double *v;
  size_t n, cap;
};

static int extent_add(struct extent_list *l, int64_t off, int64_t len) {
  if (len <= 0) return 1;
  if (l->n > 0 && (int64_t)(l->v[l->n - 2] + l->v[l->n - 1]) >= off) {
    int64_t end = off + len;
    int64_t prev_end = (int64_t)(l->v[l->n - 2] + l->v[l->n - 1]);
    if (end > prev_end) l->v[l->n - 1] = (double)(end - (int64_t)l->v[l->n - 2]);
    return 1;
  }
  if (l->n + 2 > l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 64;
    double *v = realloc(l->v, cap * sizeof(double));
    if (v == NULL) return 0;
    l->v = v;
    l->cap = cap;
  }
  l->v[l->n++] = (double)off;
  l->v[l->n++] = (double)len;
  return 1;
}

/* 1 on success, 0 if FIEMAP is not supported here (caller falls back), -1 on error (errno set). */
static int extents_fiemap(int fd, int64_t start, int64_t end, struct extent_list *out) {
  struct fiemap *fm = malloc(sizeof(struct fiemap) + FIEMAP_BATCH * sizeof(struct fiemap_extent));
  if (fm == NULL) return -1;
  int64_t pos = start;
  int last = 0;
  while (!last && pos < end) {
    memset(fm, 0, sizeof(struct fiemap));
    fm->fm_start = (uint64_t)pos;
    fm->fm_length = (uint64_t)(end - pos);
    fm->fm_extent_count = FIEMAP_BATCH;
    if (ioctl(fd, FS_IOC_FIEMAP, fm) < 0) {
      int err = errno;
      free(fm);
      if (err == EOPNOTSUPP || err == ENOTTY || err == EINVAL) return 0;
      errno = err;
      return -1;
    }
    if (fm->fm_mapped_extents == 0) break;
    for (uint32_t i = 0; i < fm->fm_mapped_extents; i++) {
      const struct fiemap_extent *e = &fm->fm_extents[i];
      int64_t a = (int64_t)e->fe_logical, b = a + (int64_t)e->fe_length;
      if (e->fe_flags & FIEMAP_EXTENT_LAST) last = 1;
      if (b > pos) pos = b;
      if (a < start) a = start;
      if (b > end) b = end;
      if (b > a && !extent_add(out, a, b - a)) {
        free(fm);
        errno = ENOMEM;
        return -1;
      }
    }
  }
  free(fm);
  return 1;
}

static int extents_seek(int fd, int64_t start, int64_t end, struct extent_list *out, const char **what) {
  off_t pos = (off_t)start;
  while (pos < (off_t)end) {
    off_t d = lseek(fd, pos, SEEK_DATA);
    if (d < 0) {
      if (errno == ENXIO) break;
      *what = "lseek(SEEK_DATA)";
      return -1;
    }
    if (d >= (off_t)end) break;
    off_t h = lseek(fd, d, SEEK_HOLE);
    if (h < 0) {
      *what = "lseek(SEEK_HOLE)";
      return -1;
    }
    if (h > (off_t)end) h = (off_t)end;
    if (!extent_add(out, (int64_t)d, (int64_t)(h - d))) {
      errno = ENOMEM;
      *what = "dataExtents";
      return -1;
    }
    pos = h;
  }
  return 1;
}

static napi_value data_extents(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd, start, end;
  if (argc < 3 || !get_i64(env, argv[0], &fd) || !get_i64(env, argv[1], &start) || !get_i64(env, argv[2], &end)) {
    napi_throw_type_error(env, NULL, "expected (fd, start, end)");
    return NULL;
  }
  struct extent_list list = {NULL, 0, 0};
  const char *what = "ioctl(FIEMAP)";
  int r = end > start ? extents_fiemap((int)fd, start, end, &list) : 1;
  if (r == 0) {
    list.n = 0;
    r = extents_seek((int)fd, start, end, &list, &what);
  }
  if (r < 0) {
    int err = errno;
    free(list.v);
    return throw_errno(env, what, err);
  }
  napi_value buffer, out;
  void *data = NULL;
  if (napi_create_arraybuffer(env, list.n * sizeof(double), &data, &buffer) != napi_ok ||
      napi_create_typedarray(env, napi_float64_array, list.n, buffer, 0, &out) != napi_ok) {
    free(list.v);
    napi_throw_error(env, "ERR_SHORTHORN_NATIVE", "dataExtents: out of memory");
    return NULL;
  }
  if (list.n > 0) memcpy(data, list.v, list.n * sizeof(double));
  free(list.v);
  return out;
}

/* allocatedBytes(fd): st_blocks * 512, what `du` reports. */
#include <sys/stat.h>
static napi_value allocated_bytes(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int64_t fd;
  if (argc < 1 || !get_i64(env, argv[0], &fd)) {
    napi_throw_type_error(env, NULL, "expected (fd)");
    return NULL;
  }
  struct stat st;
  if (fstat((int)fd, &st) != 0) return throw_errno(env, "fstat", errno);
  napi_value out;
  napi_create_int64(env, (int64_t)st.st_blocks * 512, &out);
  return out;
}

/* The addon's only module init; the other source files hook in through exports.h. */
static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"seekData", NULL, seek_data, NULL, NULL, NULL, napi_default, NULL},
      {"seekHole", NULL, seek_hole, NULL, NULL, NULL, napi_default, NULL},
      {"punchHole", NULL, punch_hole, NULL, NULL, NULL, napi_default, NULL},
      {"dataExtents", NULL, data_extents, NULL, NULL, NULL, napi_default, NULL},
      {"allocatedBytes", NULL, allocated_bytes, NULL, NULL, NULL, napi_default, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok ||
      crc64_register(env, exports) != napi_ok || aligned_register(env, exports) != napi_ok ||
      gather_register(env, exports) != napi_ok || nowait_register(env, exports) != napi_ok ||
      sched_register(env, exports) != napi_ok) {
    /* Returning NULL alone would hand require() a half-filled exports object without complaint. */
    napi_throw_error(env, "ERR_SHORTHORN_NATIVE", "shorthorn_native: module init failed");
    return NULL;
  }
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
