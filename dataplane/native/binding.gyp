{
  "targets": [
    {
      "target_name": "shorthorn_native",
      "sources": ["src/sparse.c"],
      "cflags": ["-O2", "-Wall", "-Wextra"]
    }
  ]
}
