//! Puts the prebuilt libduckdb.so's folder on the binary's rpath, so `sightline` and its
//! test binaries run without LD_LIBRARY_PATH. With the `bundled` feature DuckDB is
//! compiled in and there is nothing to find.
fn main() {
    println!("cargo:rerun-if-env-changed=DUCKDB_LIB_DIR");
    if std::env::var_os("CARGO_FEATURE_BUNDLED").is_some() {
        return;
    }
    if let Ok(dir) = std::env::var("DUCKDB_LIB_DIR") {
        println!("cargo:rustc-link-arg=-Wl,-rpath,{dir}");
    }
}
