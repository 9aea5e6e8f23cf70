//! DPDK's link flags come from dpdk-sys (`links = "dpdk"`). Here we record the DPDK version the
//! binary was built against, so `anygate --version` can report it, and compile GoBGP's gRPC
//! API (`bgp::gobgp`) from the `.proto` files Debian ships, with the system `protoc`.
use std::path::{Path, PathBuf};

/// Where Debian's golang-github-osrg-gobgp-dev puts them; `GOBGP_PROTO_DIR` overrides it.
const GOBGP_PROTO_DIR: &str = "/usr/share/gocode/src/github.com/osrg/gobgp/api";
const GOBGP_PROTOS: [&str; 3] = ["gobgp.proto", "attribute.proto", "capability.proto"];

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
    gobgp_api();
}

/// Generates the gobgpd API client (no server) into OUT_DIR as `apipb.rs`.
fn gobgp_api() {
    println!("cargo:rerun-if-env-changed=GOBGP_PROTO_DIR");
    println!("cargo:rerun-if-env-changed=PROTOC");
    println!("cargo:rerun-if-env-changed=PROTOC_INCLUDE");
    let dir = PathBuf::from(std::env::var("GOBGP_PROTO_DIR").unwrap_or(GOBGP_PROTO_DIR.into()));
    let files: Vec<PathBuf> = GOBGP_PROTOS.iter().map(|f| dir.join(f)).collect();
    for f in &files {
        if !f.is_file() {
            fail(&format!(
                "{} is missing: GoBGP's API definitions come from the Debian package \
                 golang-github-osrg-gobgp-dev (scripts/setup installs it), or set \
                 GOBGP_PROTO_DIR to a directory holding {}",
                f.display(),
                GOBGP_PROTOS.join(", ")
            ));
        }
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let protoc = std::env::var("PROTOC").unwrap_or("protoc".into());
    if std::process::Command::new(&protoc)
        .arg("--version")
        .output()
        .is_err()
    {
        fail(&format!(
            "`{protoc}` not found: install the Debian package protobuf-compiler \
             (scripts/setup does), or set PROTOC"
        ));
    }
    // The well-known types (google/protobuf/any.proto ...) GoBGP imports.
    let wkt = std::env::var("PROTOC_INCLUDE").unwrap_or("/usr/include".into());
    if !Path::new(&wkt).join("google/protobuf/any.proto").is_file() {
        fail(&format!(
            "{wkt}/google/protobuf/any.proto is missing: install the Debian package \
             libprotobuf-dev (scripts/setup does), or set PROTOC_INCLUDE"
        ));
    }
    let includes = [dir, PathBuf::from(wkt)];
    if let Err(e) = tonic_prost_build::configure()
        .build_server(false)
        .compile_protos(&files, &includes)
    {
        fail(&format!("compiling GoBGP's .proto files failed: {e}"));
    }
}

fn fail(message: &str) -> ! {
    panic!("error: {message}");
}
