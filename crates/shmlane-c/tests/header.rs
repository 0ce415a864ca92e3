//! `include/shmlane.h` is what cbindgen makes of `src/lib.rs` today: this test regenerates
//! it and fails if the checked-in header drifted. `SHMLANE_BLESS=1 cargo test -p shmlane-c
//! --test header` rewrites it instead.
#![allow(clippy::unwrap_used)]

#[test]
fn the_checked_in_header_matches_the_code() {
    let dir = env!("CARGO_MANIFEST_DIR");
    let config = cbindgen::Config::from_file(format!("{dir}/cbindgen.toml")).unwrap();
    let mut fresh = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .unwrap()
        .write(&mut fresh);
    let path = format!("{dir}/include/shmlane.h");
    if std::env::var_os("SHMLANE_BLESS").is_some() {
        std::fs::write(&path, &fresh).unwrap();
        return;
    }
    let have = std::fs::read(&path).unwrap_or_default();
    assert!(
        have == fresh,
        "{path} is out of date with src/lib.rs: run `SHMLANE_BLESS=1 cargo test -p shmlane-c \
         --test header` and commit the header"
    );
}
