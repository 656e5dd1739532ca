//! Board templates, catalogues and capabilities through the API.

mod common;

use common::Server;
use serde_json::json;

#[tokio::test]
async fn built_in_boards_catalogues_and_capabilities() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let data = server
        .query(
            "{ boardTemplates { id name arch builtIn memory { start } } processors { cpu arch boards } peripherals { model boards } buses { kind } capabilities { backend available reason gdb binaries { name version } } }",
            json!({}),
        )
        .await;
    let ids: Vec<&str> = data["boardTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    for id in [
        "mps2-an385",
        "lm3s6965evb",
        "stm32f4-disco",
        "riscv32-virt",
        "aarch64-virt",
    ] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    let processors = data["processors"].as_array().unwrap();
    let m3 = processors.iter().find(|p| p["cpu"] == "cortex-m3").unwrap();
    assert_eq!(m3["boards"], json!(["lm3s6965evb", "mps2-an385"]));
    assert!(
        data["peripherals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["model"] == "pl011")
    );
    assert!(
        data["buses"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["kind"] == "apb")
    );

    let capabilities = data["capabilities"].as_array().unwrap();
    let qemu = capabilities
        .iter()
        .find(|c| c["backend"] == "QEMU")
        .unwrap();
    assert_eq!(qemu["available"], true);
    assert_eq!(qemu["gdb"], true);
    let arm = qemu["binaries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == "qemu-system-arm");
    assert!(arm.unwrap()["version"].as_str().unwrap().contains('.'));
    for other in ["RENODE", "SKYEYE", "PROBE_RS"] {
        let capability = capabilities.iter().find(|c| c["backend"] == other).unwrap();
        assert_eq!(capability["available"], false);
        assert!(!capability["reason"].as_str().unwrap().is_empty());
    }
}

#[tokio::test]
async fn user_templates_are_created_updated_and_deleted_and_built_ins_are_read_only() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&dir.path().join("data"), &[]).await;
    let base = std::fs::read_to_string(common::repo().join("boards/lm3s6965evb.yaml")).unwrap();
    let mine = base.replace("id: lm3s6965evb", "id: my-board");
    let create =
        "mutation($d: String!) { createBoardTemplate(definition: $d) { id name builtIn } }";
    let created = server.query(create, json!({ "d": mine })).await;
    assert_eq!(created["createBoardTemplate"]["builtIn"], false);
    assert_eq!(
        server.error_code(create, json!({ "d": mine })).await,
        "ALREADY_EXISTS"
    );
    assert_eq!(
        server.error_code(create, json!({ "d": base })).await,
        "ALREADY_EXISTS"
    );

    let update = "mutation($id: ID!, $d: String!) { updateBoardTemplate(id: $id, definition: $d) { id name } }";
    let renamed = mine.replace("name: Stellaris", "name: Renamed Stellaris");
    let updated = server
        .query(update, json!({ "id": "my-board", "d": renamed }))
        .await;
    assert!(
        updated["updateBoardTemplate"]["name"]
            .as_str()
            .unwrap()
            .starts_with("Renamed")
    );
    assert_eq!(
        server
            .error_code(update, json!({ "id": "lm3s6965evb", "d": base }))
            .await,
        "READ_ONLY"
    );

    let response = server
        .request(create, json!({ "d": mine.replace("id: my-board", "id: other").replace("size: 0x00010000", "size: 0") }))
        .await;
    assert_eq!(response["errors"][0]["extensions"]["code"], "BAD_BOARD");
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("memory[1].size"),
        "{response}"
    );

    let sneaky = mine.replace("id: my-board", "id: sneaky").replace(
        "    exit: semihosting",
        "    exit: semihosting\n    extra_args: [\"-D\", \"/etc/passwd\"]",
    );
    let response = server.request(create, json!({ "d": sneaky })).await;
    assert_eq!(
        response["errors"][0]["extensions"]["code"], "BAD_BOARD",
        "{response}"
    );
    assert!(
        response["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("extra_args"),
        "{response}"
    );

    let session = server.create_session("my-board").await;
    let delete = "mutation($id: ID!) { deleteBoardTemplate(id: $id) }";
    assert_eq!(
        server.error_code(delete, json!({ "id": "my-board" })).await,
        "IN_USE"
    );
    server
        .query(
            "mutation($s: ID!) { deleteSession(id: $s) }",
            json!({ "s": session }),
        )
        .await;
    assert_eq!(
        server.query(delete, json!({ "id": "my-board" })).await["deleteBoardTemplate"],
        true
    );
    assert_eq!(
        server.error_code(delete, json!({ "id": "my-board" })).await,
        "NOT_FOUND"
    );
    assert_eq!(
        server
            .error_code(delete, json!({ "id": "mps2-an385" }))
            .await,
        "READ_ONLY"
    );
}

#[tokio::test]
async fn a_bad_board_file_is_reported_by_name_and_the_others_still_load() {
    let dir = tempfile::tempdir().unwrap();
    let boards = dir.path().join("boards");
    std::fs::create_dir(&boards).unwrap();
    for name in ["mps2-an385.yaml", "riscv32-virt.yaml"] {
        std::fs::copy(common::repo().join("boards").join(name), boards.join(name)).unwrap();
    }
    std::fs::write(
        boards.join("broken.yaml"),
        std::fs::read_to_string(boards.join("mps2-an385.yaml"))
            .unwrap()
            .replace("id: mps2-an385", "id: broken")
            .replace("access: rwx }", "access: fly }"),
    )
    .unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--boards-dir", boards.to_str().unwrap()],
    )
    .await;
    let data = server.query("{ boardTemplates { id } }", json!({})).await;
    assert_eq!(data["boardTemplates"].as_array().unwrap().len(), 2);
    let log = server.log();
    assert!(
        log.contains("broken.yaml") && log.contains("memory[0].access"),
        "{log}"
    );
}
