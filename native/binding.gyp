{
  "targets": [
    {
      "target_name": "clustermesh_native",
      "sources": ["src/addon.cc", "src/errors.cc", "src/object.cc", "src/maps.cc", "src/cgroup_attach.cc", "src/layouts.cc"],
      "include_dirs": ["../bpf"],
      "dependencies": ["<!(node -p \"require('node-addon-api').targets\"):node_addon_api_except"],
      "cflags_cc": ["-std=c++17", "-Wall", "-Wextra"],
      "libraries": ["-lbpf"],
      "defines": ["NAPI_VERSION=8"]
    }
  ]
}
