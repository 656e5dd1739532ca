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
    let ids = board_ids(&data);
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
        response["errors"][0]["extensions"]["code"], "UNSAFE_TEMPLATE",
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

/// `--boards-dir` adds boards to the built-in ones and replaces a built-in of the same
/// id; a bad file there is reported by name and field, and the rest still load.
#[tokio::test]
async fn a_boards_dir_adds_and_replaces_and_a_bad_file_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let boards = dir.path().join("boards");
    std::fs::create_dir(&boards).unwrap();
    let mps2 = std::fs::read_to_string(common::repo().join("boards/mps2-an385.yaml")).unwrap();
    std::fs::write(
        boards.join("mps2.yaml"),
        mps2.replacen("name: ", "name: Lab's ", 1),
    )
    .unwrap();
    std::fs::write(
        boards.join("extra.yaml"),
        mps2.replace("id: mps2-an385", "id: lab-m3"),
    )
    .unwrap();
    std::fs::write(
        boards.join("broken.yaml"),
        mps2.replace("id: mps2-an385", "id: broken")
            .replace("access: rwx }", "access: fly }"),
    )
    .unwrap();
    let server = Server::start(
        &dir.path().join("data"),
        &["--boards-dir", boards.to_str().unwrap()],
    )
    .await;
    let data = server
        .query("{ boardTemplates { id name builtIn } }", json!({}))
        .await;
    let ids = board_ids(&data);
    for id in ["mps2-an385", "lab-m3", "riscv32-virt", "lm3s6965evb"] {
        assert!(ids.contains(&id), "{id} missing from {ids:?}");
    }
    assert!(!ids.contains(&"broken"), "{ids:?}");
    assert_eq!(ids.iter().filter(|id| **id == "mps2-an385").count(), 1);
    let replaced = data["boardTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["id"] == "mps2-an385")
        .unwrap();
    assert!(
        replaced["name"].as_str().unwrap().starts_with("Lab's "),
        "{replaced}"
    );
    let log = server.log();
    assert!(
        log.contains("broken.yaml") && log.contains("memory[0].access"),
        "{log}"
    );
}

/// The ids `boardTemplates { id }` answered, in its order.
fn board_ids(data: &serde_json::Value) -> Vec<&str> {
    data["boardTemplates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect()
}

/// mps2-an385 as a user template `mine`, with `edit` applied to its text.
fn user_board(edit: impl Fn(String) -> String) -> String {
    let base = std::fs::read_to_string(common::repo().join("boards/mps2-an385.yaml")).unwrap();
    edit(base.replace("id: mps2-an385", "id: mine"))
}

fn with_extra_args(args: &[&str]) -> String {
    user_board(|text| {
        text.replace(
            "    exit: semihosting",
            &format!("    exit: semihosting\n    extra_args: {}", json!(args)),
        )
    })
}

#[tokio::test]
async fn user_templates_that_could_reach_the_host_are_refused_and_never_run() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let server = Server::start(&data_dir, &[]).await;
    let create = "mutation($d: String!) { createBoardTemplate(definition: $d) { id } }";
    let update =
        "mutation($d: String!) { updateBoardTemplate(id: \"mine\", definition: $d) { id } }";
    let chardev = with_extra_args(&["-chardev", "file,id=x,path=/tmp/virserver-escape-chardev"]);
    let cases = [
        (
            chardev.clone(),
            "backends.qemu.extra_args[0]: '-chardev' is not allowed in a user template",
        ),
        (
            with_extra_args(&[
                "-icount",
                "shift=auto,rr=record,rrfile=/tmp/virserver-escape-rr",
            ]),
            "backends.qemu.extra_args[1]: '-icount shift=auto,rr=record,rrfile=",
        ),
        (
            with_extra_args(&["-smp", "2", "-D", "/etc/passwd"]),
            "backends.qemu.extra_args[2]: '-D'",
        ),
        (
            with_extra_args(&["-bios", "/etc/passwd"]),
            "backends.qemu.extra_args[1]: '-bios /etc/passwd'",
        ),
        (
            user_board(|t| {
                t.replace(
                    "machine: mps2-an385",
                    "machine: \"mps2-an385,memory-backend=m\"",
                )
            }),
            "backends.qemu.machine: 'mps2-an385,memory-backend=m'",
        ),
        (
            user_board(|t| {
                t.replace(
                    "    exit: semihosting",
                    "    cpu: \"cortex-m3,x=/etc/passwd\"\n    exit: semihosting",
                )
            }),
            "backends.qemu.cpu:",
        ),
        (
            user_board(|t| {
                t.replace(
                    "    exit: semihosting",
                    "    memory: \"16M,maxmem=1G\"\n    exit: semihosting",
                )
            }),
            "backends.qemu.memory:",
        ),
        (
            user_board(|t| {
                t.replace(
                    "binary: qemu-system-arm",
                    "binary: qemu-system-../../../bin/sh",
                )
            }),
            "backends.qemu.binary:",
        ),
        (
            user_board(|t| t.replace("platforms/cpus/cortex-m3.repl", "/etc/passwd")),
            "backends.renode.platform:",
        ),
    ];
    for (definition, message) in &cases {
        let response = server.request(create, json!({ "d": definition })).await;
        let error = &response["errors"][0];
        assert_eq!(
            error["extensions"]["code"], "UNSAFE_TEMPLATE",
            "{message}: {response}"
        );
        assert!(
            error["message"].as_str().unwrap().starts_with(message),
            "{response}"
        );
    }
    assert_eq!(
        server
            .error_code("{ boardTemplate(id: \"mine\") { id } }", json!({}))
            .await,
        "NOT_FOUND",
        "nothing refused was stored"
    );

    // The safe shapes are accepted, and run on real QEMU.
    let safe = with_extra_args(&["-smp", "1", "-m", "16M", "-icount", "shift=auto,sleep=off"]);
    server.query(create, json!({ "d": safe })).await;
    for (definition, _) in &cases {
        assert_eq!(
            server.error_code(update, json!({ "d": definition })).await,
            "UNSAFE_TEMPLATE"
        );
    }
    let stored = server
        .query(
            "{ boardTemplate(id: \"mine\") { qemu { extraArgs } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        stored["boardTemplate"]["qemu"]["extraArgs"],
        json!(["-smp", "1", "-m", "16M", "-icount", "shift=auto,sleep=off"]),
        "a refused update leaves the template as it was"
    );
    let session = server.create_session("mine").await;
    server.upload(&session, "hello-mps2-an385.elf").await;
    server.power(&session, "ON", false).await;
    let ended = server.wait_state(&session, "EXITED").await;
    assert_eq!(ended["exitCode"], 0, "{ended}");

    // A template stored under older rules (this one has no '/' anywhere, which they
    // allowed) is checked again when read: it is not served, and never reaches QEMU.
    let older = with_extra_args(&["-icount", "shift=auto,rr=record,rrfile=escape-rr"]);
    let database = sea_orm::Database::connect(format!(
        "sqlite://{}?mode=rw",
        data_dir.join("virserver.db").display()
    ))
    .await
    .unwrap();
    use sea_orm::ConnectionTrait;
    let changed = database
        .execute_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Sqlite,
            "UPDATE board_templates SET definition = ? WHERE id = ?",
            [older.into(), "mine".into()],
        ))
        .await
        .unwrap();
    assert_eq!(changed.rows_affected(), 1);
    let ids = server.query("{ boardTemplates { id } }", json!({})).await;
    assert!(
        !ids["boardTemplates"]
            .as_array()
            .unwrap()
            .iter()
            .any(|b| b["id"] == "mine"),
        "{ids}"
    );
    let power = "mutation($s: ID!) { powerSession(id: $s, action: ON) { state } }";
    assert_eq!(
        server.error_code(power, json!({ "s": session })).await,
        "NOT_FOUND"
    );
    let log = server.log();
    assert!(
        log.contains("stored board template no longer valid") && log.contains("rrfile=escape-rr"),
        "{log}"
    );
    let run_dir = data_dir.join("run").join(&session);
    assert!(!run_dir.join("escape-rr").exists());
}
