//! schema.graphql is the served schema: this test fails when they drift apart.
//! `VIRSERVER_BLESS=1 cargo test --test schema` rewrites the file.

#[test]
fn checked_in_schema_matches_the_served_one() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let served = virserver::api::schema::sdl();
    if std::env::var_os("VIRSERVER_BLESS").is_some() {
        std::fs::write(&path, &served).unwrap();
    }
    let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        checked_in == served,
        "schema.graphql differs from the served schema; run `VIRSERVER_BLESS=1 cargo test --test schema`"
    );
}

#[test]
fn the_schema_command_prints_the_same_sdl() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_virserver"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        virserver::api::schema::sdl()
    );
}
