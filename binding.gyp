{
  "targets": [
    {
      "target_name": "sluice_native",
      "sources": ["native/sluice_native.c", "native/fsbatch.c", "native/restorebatch.c", "native/xattrbatch.c", "native/walkbatch.c", "native/zstdpool.c", "native/decodepool.c"],
      "dependencies": ["<!(node -p \"require('path').dirname(require.resolve('zstd-napi/package.json'))\")/deps/zstd.gyp:libzstd"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE"],
      "cflags_c": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
