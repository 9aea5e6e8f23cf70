//! Finds the system DPDK with pkg-config, generates bindings with bindgen and compiles the C
//! shim for the static inline fast-path functions. Fails with the packages to install.
use std::env;
use std::path::PathBuf;

const HINT: &str = "install DPDK and libclang: on Debian/Ubuntu run `scripts/setup` \
                    (apt-get install libdpdk-dev dpdk clang libclang-dev pkg-config)";

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.h");
    println!("cargo:rerun-if-changed=shim.c");

    let dpdk = match pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
    {
        Ok(lib) => lib,
        Err(e) => panic!("dpdk-sys: libdpdk >= 22.11 not found by pkg-config ({e}); {HINT}"),
    };

    // pkg-config's cflags carry `-include rte_config.h` and -march; bindgen and cc both need them.
    let extra: Vec<String> = std::process::Command::new("pkg-config")
        .args(["--cflags", "libdpdk"])
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();

    let mut build = cc::Build::new();
    build.file("shim.c").opt_level(3).warnings(false);
    for inc in &dpdk.include_paths {
        build.include(inc);
    }
    let mut it = extra.iter();
    while let Some(f) = it.next() {
        if f == "-include" {
            if let Some(h) = it.next() {
                build.flag("-include").flag(h);
            }
        } else if f.starts_with("-march") {
            build.flag(f);
        }
    }
    build.compile("anygate_shim");

    let mut builder = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(extra.iter())
        .allowlist_function("rte_eal_.*|rte_eth_.*|rte_pktmbuf_.*|rte_mempool_.*|rte_lcore_.*")
        .allowlist_function("rte_thread_.*|rte_strerror|rte_dev_probe|rte_socket_id|ag_.*")
        .allowlist_function("rte_get_main_lcore|rte_exit|rte_openlog_stream")
        .allowlist_type("rte_mbuf|rte_mempool|rte_eth_.*|rte_ether_addr")
        .allowlist_var("RTE_ETH_.*|RTE_MBUF_.*|RTE_MAX_.*|RTE_PKTMBUF_.*|RTE_ETHER_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .prepend_enum_name(false);
    for inc in &dpdk.include_paths {
        builder = builder.clang_arg(format!("-I{}", inc.display()));
    }
    // bindgen panics by itself when it cannot load libclang; turn that into our message too.
    let bindings =
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || builder.generate())) {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => panic!("dpdk-sys: bindgen failed ({e}); {HINT}"),
            Err(_) => panic!("dpdk-sys: bindgen could not run libclang; {HINT}"),
        };
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("bindings.rs");
    bindings
        .write_to_file(&out)
        .expect("dpdk-sys: cannot write bindings.rs");
}
