{
  "targets": [
    {
      "target_name": "sluice_native",
      "sources": ["native/sluice_native.c", "native/fsbatch.c", "native/restorebatch.c", "native/xattrbatch.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
