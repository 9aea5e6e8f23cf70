//! DPDK's link flags come from dpdk-sys (`links = "dpdk"`). Here we record the DPDK version the
//! binary was built against, so `anygate --version` can report it.
fn main() {
    let version = std::process::Command::new("pkg-config")
        .args(["--modversion", "libdpdk"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=ANYGATE_DPDK_VERSION={version}");
    println!("cargo:rerun-if-changed=build.rs");
}
