{
  "targets": [
    {
      "target_name": "coat_tcp_repair",
      "sources": ["src/tcp-repair/native/tcp_repair.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
