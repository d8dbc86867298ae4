//! Lays out the `fdfs-ha` binary's code from a profile: the functions an idle tracker and storage
//! and a catching-up storage run (`scripts/fdfs-ha.order`, written by `scripts/order-code`) are
//! linked first, together (a linker script made by `build/code_order.rs`).
//!
//! Why: the kernel maps a program's code in 64 KiB windows around each page it touches
//! (fault-around). Spread over the whole text (tracker, storage, gateway, VRRP, CLI in one
//! binary), the little code an idle storage runs made it map 4.2 of its 5.4 MB; packed together,
//! 1.4 to 1.5 MB.
//!
//! Relocations are packed (`-z pack-relative-relocs`, glibc 2.36+ at run time): the dynamic
//! loader read 240 KB of them at every start, and they stayed mapped.
//!
//! Only for release builds of x86_64-unknown-linux-gnu with Rust's default linker there
//! (rust-lld). A name the linker does not find (code renamed since the profile) matches nothing,
//! so a stale profile costs memory, never correctness. `FDFS_HA_NO_CODE_ORDER=1` turns both off
//! (for another linker, or an older glibc).

#[path = "build/code_order.rs"]
mod code_order;

use std::path::Path;

const ORDER: &str = "scripts/fdfs-ha.order";

fn main() {
    println!("cargo:rerun-if-changed={ORDER}");
    println!("cargo:rerun-if-changed=build/code_order.rs");
    println!("cargo:rerun-if-env-changed=FDFS_HA_NO_CODE_ORDER");
    println!("cargo:rerun-if-env-changed=CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER");
    let env = |k: &str| std::env::var(k).unwrap_or_default();
    let release = env("PROFILE") == "release";
    let default_linker = env("TARGET") == "x86_64-unknown-linux-gnu"
        && env("CARGO_TARGET_X86_64_UNKNOWN_LINUX_GNU_LINKER").is_empty()
        && !env("CARGO_ENCODED_RUSTFLAGS").contains("linker");
    let wanted = std::env::var_os("FDFS_HA_NO_CODE_ORDER").is_none();
    let order = Path::new(&env("CARGO_MANIFEST_DIR")).join(ORDER);
    if !(release && default_linker && wanted) {
        return;
    }
    let script = std::fs::read_to_string(&order)
        .ok()
        .and_then(|o| code_order::linker_script(&o));
    if let Some(script) = script {
        let path = Path::new(&env("OUT_DIR")).join("code-order.ld");
        if std::fs::write(&path, script).is_ok() {
            let arg = format!("-Wl,-T,{}", path.display());
            println!("cargo:rustc-link-arg-bin=fdfs-ha={arg}");
        }
    }
    println!("cargo:rustc-link-arg-bin=fdfs-ha=-Wl,-z,pack-relative-relocs");
}
