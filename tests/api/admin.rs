//! The admin routes: absent without ADMIN_TOKEN, 401 with a wrong token, and working faults.

use std::time::Duration;

use crate::helpers::{PATIENCE, Spawn, TestServer, ended, record, run_cli};

const TOKEN: &str = "s3cret-admin-token-value";

async fn post_action(server: &TestServer, action: &str, token: Option<&str>) -> u16 {
    let mut request = server
        .client
        .post(server.url(&format!("/chaos/actions/{action}")));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn admin_routes_do_not_exist_without_a_token() {
    let server = Spawn::default().ready().await;
    for action in ["crash", "hang", "unready", "nope"] {
        assert_eq!(
            post_action(&server, action, Some("anything")).await,
            404,
            "{action}"
        );
    }
    assert!(server.alive_check().await);
}

#[tokio::test]
async fn wrong_or_missing_tokens_get_401_and_the_token_never_leaks() {
    let server = Spawn::default().env("ADMIN_TOKEN", TOKEN).ready().await;
    assert_eq!(post_action(&server, "unready", None).await, 401);
    assert_eq!(post_action(&server, "unready", Some("wrong")).await, 401);
    assert_eq!(
        post_action(&server, "unready", Some(&TOKEN[..TOKEN.len() - 1])).await,
        401
    );
    assert_eq!(
        server.status("/readyz").await,
        200,
        "a refused action changes nothing"
    );
    assert_eq!(post_action(&server, "unready", Some(TOKEN)).await, 202);
    let chaos = server.get("/chaos").await.text().await.unwrap();
    assert!(!chaos.contains(TOKEN));
    assert!(!server.logs().join("\n").contains(TOKEN));
}

#[tokio::test]
async fn admin_actions_switch_faults_on_and_off() {
    let mut server = Spawn::default().env("ADMIN_TOKEN", TOKEN).ready().await;
    assert_eq!(post_action(&server, "unready", Some(TOKEN)).await, 202);
    assert_eq!(server.status("/readyz").await, 503);
    assert_eq!(post_action(&server, "ready", Some(TOKEN)).await, 202);
    assert_eq!(server.status("/readyz").await, 200);
    assert_eq!(post_action(&server, "unhealthy", Some(TOKEN)).await, 202);
    assert_eq!(server.status("/livez").await, 500);
    assert_eq!(post_action(&server, "healthy", Some(TOKEN)).await, 202);
    assert_eq!(server.status("/livez").await, 200);
    assert_eq!(
        post_action(&server, "errors?rate=1", Some(TOKEN)).await,
        202
    );
    assert!(
        server
            .post_json("/predict", &record())
            .await
            .status()
            .is_server_error()
    );
    assert_eq!(
        post_action(&server, "errors?rate=7", Some(TOKEN)).await,
        422
    );
    // The profile's limits and messages, `max_mib` included.
    let refused: serde_json::Value = server
        .client
        .post(server.url("/chaos/actions/leak?max_mib=-5"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refused["field"], "max_mib");
    assert_eq!(
        refused["error"],
        "max_mib: expected a number above 0 and at most 1048576, got -5"
    );
    assert_eq!(
        post_action(&server, "hang?cores=2", Some(TOKEN)).await,
        422,
        "a parameter of another fault"
    );
    assert_eq!(post_action(&server, "clear", Some(TOKEN)).await, 202);
    assert_eq!(server.post_json("/predict", &record()).await.status(), 200);
    assert_eq!(post_action(&server, "explode", Some(TOKEN)).await, 404);
    let chaos = server.get_json("/chaos").await;
    assert!(
        chaos["past"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["source"] == "admin" && e["fault"] == "unready")
    );
    assert_eq!(
        post_action(&server, "crash?mode=exit&exit_code=4", Some(TOKEN)).await,
        202
    );
    let (status, _) = server.wait_exit(PATIENCE).await;
    assert_eq!(status.code(), Some(4), "{}", ended(&status));
    assert!(server.termination_message().contains("crash (exit code 4)"));
}

impl TestServer {
    async fn alive_check(&self) -> bool {
        tokio::time::timeout(Duration::from_secs(5), self.get("/livez"))
            .await
            .is_ok_and(|r| r.status() == 200)
    }
}

#[tokio::test]
async fn the_token_can_come_from_a_file_and_a_bad_file_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("token");
    std::fs::write(&path, format!("{TOKEN}\n")).unwrap();
    let file = path.to_str().unwrap();
    let server = Spawn::default().env("ADMIN_TOKEN_FILE", file).ready().await;
    assert_eq!(post_action(&server, "unready", Some("wrong")).await, 401);
    assert_eq!(
        post_action(&server, "unready", Some(TOKEN)).await,
        202,
        "the trailing newline is not part of the token"
    );
    assert!(!server.logs().join("\n").contains(TOKEN));

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "").unwrap();
    let missing = dir.path().join("missing");
    for (env, expected) in [
        (
            vec![("ADMIN_TOKEN_FILE", empty.to_str().unwrap())],
            "the file is empty",
        ),
        (
            vec![("ADMIN_TOKEN_FILE", missing.to_str().unwrap())],
            "cannot read",
        ),
        (
            vec![("ADMIN_TOKEN_FILE", file), ("ADMIN_TOKEN", "x")],
            "cannot be used with",
        ),
    ] {
        let (code, _, stderr) = run_cli(&[], &env);
        assert_eq!(code, Some(2), "{env:?}: {stderr}");
        assert!(stderr.contains("ADMIN_TOKEN_FILE"), "{env:?}: {stderr}");
        assert!(stderr.contains(expected), "{env:?}: {stderr}");
        assert!(!stderr.contains(TOKEN), "{env:?}: {stderr}");
    }
}
