{
  # CPU-only build of the addon with node-gyp (the main build is CMakeLists.txt through cmake-js,
  # which adds the CUDA kernels when nvcc is present). Same sources, same SIMD variants.
  "variables": {
    "core_sources": "<!(node -p \"require('fs').readdirSync('native',{withFileTypes:true}).filter(d=>d.isDirectory()&&['common','engine','ops','vision','pipeline'].includes(d.name)).flatMap(d=>require('fs').readdirSync('native/'+d.name).filter(f=>f.endsWith('.cpp')&&!f.endsWith('_simd.cpp')).map(f=>'native/'+d.name+'/'+f)).join(' ')\")",
    "simd_sources": "<!(node -p \"['common','engine','ops','vision','pipeline'].flatMap(d=>{try{return require('fs').readdirSync('native/'+d).filter(f=>f.endsWith('_simd.cpp')).map(f=>'native/'+d+'/'+f)}catch(e){return []}}).join(' ')\")"
  },
  "target_defaults": {
    "cflags_cc": ["-std=gnu++17", "-O3", "-fno-math-errno", "-fexceptions"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++1y", "-std=gnu++20"],
    "include_dirs": ["native"]
  },
  "targets": [
    {
      "target_name": "simd_generic",
      "type": "static_library",
      "sources": ["<@(simd_sources)"],
      "defines": ["FACESIGHT_ISA=generic", "FACESIGHT_ISA_generic=1"],
      "cflags": ["-fPIC"]
    },
    {
      "target_name": "facesight",
      "sources": ["<@(core_sources)", "<!@(node -p \"require('fs').readdirSync('native/addon').filter(f=>f.endsWith('.cpp')).map(f=>'native/addon/'+f).join(' ')\")"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "NODE_ADDON_API_DISABLE_DEPRECATED",
                  "FACESIGHT_HAS_ISA_generic=1"],
      "dependencies": ["simd_generic"],
      "conditions": [
        ["target_arch=='x64'", {
          "defines": ["FACESIGHT_HAS_ISA_avx2=1", "FACESIGHT_HAS_ISA_avx512=1"],
          "dependencies": ["simd_avx2", "simd_avx512"]
        }]
      ]
    }
  ],
  "conditions": [
    # The x86 variants only exist on x64; elsewhere the generic variant is the only one.
    ["target_arch=='x64'", {
      "targets": [
        {
          "target_name": "simd_avx2",
          "type": "static_library",
          "sources": ["<@(simd_sources)"],
          "defines": ["FACESIGHT_ISA=avx2", "FACESIGHT_ISA_avx2=1"],
          "cflags_cc": ["-mavx2", "-mfma", "-mf16c"],
          "cflags": ["-fPIC"]
        },
        {
          "target_name": "simd_avx512",
          "type": "static_library",
          "sources": ["<@(simd_sources)"],
          "defines": ["FACESIGHT_ISA=avx512", "FACESIGHT_ISA_avx512=1"],
          "cflags_cc": ["-mavx512f", "-mavx512vl", "-mavx512bw", "-mavx512dq", "-mfma", "-mf16c"],
          "cflags": ["-fPIC"]
        }
      ]
    }]
  ]
}
