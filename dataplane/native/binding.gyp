{
  "targets": [
    {
      "target_name": "shorthorn_native",
      "sources": ["src/sparse.c", "src/crc64.c", "src/aligned.c", "src/gather.c", "src/nowait.c", "src/sched.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
