//! The code-layout profile becomes a linker script that matches every build's names
//! (`build/code_order.rs`, used by `build.rs` for release builds).

#[path = "../build/code_order.rs"]
mod code_order;

use code_order::{linker_script, pattern};

#[test]
fn a_name_cut_after_its_hash_marker_matches_every_build() {
    let stem = "_ZN7fdfs_ha7storage6binlog6Binlog6append17h";
    assert_eq!(
        pattern(stem).as_deref(),
        Some("_ZN7fdfs_ha7storage6binlog6Binlog6append17h*")
    );
    // A whole name (a generic instance) only matches itself.
    let whole = "_ZN5tokio7runtime4task3raw4poll17h0123456789abcdefE";
    assert_eq!(pattern(whole).as_deref(), Some(whole));
}

#[test]
fn other_names_are_kept_or_skipped() {
    assert_eq!(pattern("__rust_alloc").as_deref(), Some("__rust_alloc"));
    assert_eq!(pattern("pow").as_deref(), Some("pow"));
    // Only Rust names are prefixes.
    assert_eq!(pattern("my17h").as_deref(), Some("my17h"));
    // Versioned libc symbols are not in the binary; characters a pattern would read
    // specially are refused.
    assert_eq!(pattern("fopen@@GLIBC_2.2.5"), None);
    assert_eq!(pattern("a*b"), None);
    assert_eq!(pattern("x(y)"), None);
    assert_eq!(pattern("  "), None);
}

#[test]
fn the_script_lists_each_function_once_in_profile_order() {
    let order = "_ZN4main5gamma17h\n\
                 pow\n\
                 _ZN4main5gamma17h\n\
                 fopen@@GLIBC_2.2.5\n\
                 _ZN4main4beta17h3a61d6efbd9d9c61E\n";
    let script = linker_script(order).expect("a script");
    let rules: Vec<&str> = script.lines().filter(|l| l.contains("*(")).collect();
    assert_eq!(
        rules,
        [
            "    *(.text._ZN4main5gamma17h* .text.unlikely._ZN4main5gamma17h*)",
            "    *(.text.pow .text.unlikely.pow)",
            "    *(.text._ZN4main4beta17h3a61d6efbd9d9c61E .text.unlikely._ZN4main4beta17h3a61d6efbd9d9c61E)",
        ]
    );
    assert!(script.contains(".text.hot :"));
    assert!(script.trim_end().ends_with("INSERT BEFORE .text;"));
    assert_eq!(linker_script("fopen@@GLIBC_2.2.5\n\n"), None);
}

#[test]
fn the_checked_in_profile_covers_the_storage_in_every_build() {
    let order = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/scripts/fdfs-ha.order"
    ))
    .expect("scripts/fdfs-ha.order");
    let script = linker_script(&order).expect("a script");
    // The storage's own functions are prefixes (no build's hash in them).
    let storage = script.matches(".text._ZN7fdfs_ha7storage").count();
    let prefixes = script.matches("fdfs_ha7storage").count();
    assert!(
        storage > 50,
        "only {storage} storage functions in the profile"
    );
    assert!(prefixes > 0);
    // Every rule is one balanced pattern pair (a broken one would fail the release link).
    for l in script.lines().filter(|l| l.contains("*(")) {
        assert_eq!(l.matches('(').count(), 1, "{l}");
        assert_eq!(l.matches(')').count(), 1, "{l}");
    }
}
