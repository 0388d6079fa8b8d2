//! Every real Microsoft error body in tests/fixtures/aad maps to the problem id written in it
//! (the S* files: Power BI's answers to a service principal).

use pbikiosk::{Problem, ProblemId};

#[test]
fn every_fixture_maps_to_its_problem_id() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/aad");
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let Some(expected) = v["problem"].as_str() else {
            continue; // userrealm samples carry no problem
        };
        let status = v["http_status"].as_u64().unwrap() as u16;
        let body = v["body"].to_string();
        let p = match v["endpoint"].as_str().unwrap() {
            "token" => Problem::from_token_error(status, &body, None),
            "powerbi" => Problem::from_powerbi_error(status, &body, None),
            // A service principal's calls, and its GenerateToken calls.
            "powerbi_app" => Problem::from_service_principal_error(status, &body, false),
            "generate_token" => Problem::from_service_principal_error(status, &body, true),
            other => panic!("{}: unknown endpoint {other}", path.display()),
        };
        let expected: ProblemId = serde_json::from_value(serde_json::json!(expected)).unwrap();
        assert_eq!(p.id, expected, "{}", path.display());
        if v["endpoint"] == "token" {
            // The references an admin needs to search the sign-in logs survive.
            assert_eq!(
                p.trace_id(),
                v["body"]["trace_id"].as_str(),
                "{}",
                path.display()
            );
            assert_eq!(
                p.aadsts(),
                [v["body"]["error_codes"][0].as_u64().unwrap() as u32]
            );
        }
        checked += 1;
    }
    assert!(checked >= 17, "only {checked} fixtures found");
}
