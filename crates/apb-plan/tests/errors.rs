//! Bad input gets one clear error with a stable code and the field's path: never a panic,
//! a hang, or a NaN in the output.

use apb_plan::call;
use apb_plan::json::{parse, Json};
use apb_test_support::Rng;

const MODEL: &str = r#""model":{"layers":32,"hidden":4096,"heads":32,"kvHeads":8,"headDim":128,"intermediate":14336,"vocab":128256,"bytesPerWeight":2}"#;
const HW: &str = r#""hardware":{"matmulTflops":700,"attentionTflops":330,"hbmGBs":3000,"linkGBs":45,"linkLatencyUs":10,"memoryGiB":80}"#;

fn with(fields: &str) -> String {
    format!("{{{fields},{MODEL},{HW}}}")
}

fn error_of(op: &str, input: &str) -> (String, String, String) {
    let out = parse(&call(op, input)).expect("output is JSON");
    let e = out.get("error").unwrap_or_else(|| panic!("expected an error for {input}"));
    let s = |k: &str| match e.get(k) {
        Some(Json::Str(s)) => s.to_string(),
        _ => panic!("error lacks {k}"),
    };
    (s("code"), s("path"), s("message"))
}

#[test]
fn the_attention_blocks_come_as_a_pair() {
    let blocks_only = HW.replace(r#""memoryGiB":80"#, r#""memoryGiB":80,"multiprocessors":132"#);
    let (code, path, message) = error_of("plan", &format!(r#"{{"contextTokens":32768,"hosts":8,{MODEL},{blocks_only}}}"#));
    assert_eq!((code.as_str(), path.as_str()), ("OUT_OF_RANGE", "hardware.attentionBlockUs"), "{message}");
    let cost_only = HW.replace(r#""memoryGiB":80"#, r#""memoryGiB":80,"attentionBlockUs":7"#);
    let (code, path, _) = error_of("plan", &format!(r#"{{"contextTokens":32768,"hosts":8,{MODEL},{cost_only}}}"#));
    assert_eq!((code.as_str(), path.as_str()), ("OUT_OF_RANGE", "hardware.multiprocessors"));
}

#[test]
fn each_bad_field_is_named_with_its_allowed_range() {
    let cases = [
        (with(r#""contextTokens":0,"hosts":8"#), "OUT_OF_RANGE", "contextTokens"),
        (with(r#""contextTokens":-5,"hosts":8"#), "OUT_OF_RANGE", "contextTokens"),
        (with(r#""contextTokens":4294967296,"hosts":8"#), "OUT_OF_RANGE", "contextTokens"),
        (with(r#""contextTokens":1.5,"hosts":8"#), "WRONG_TYPE", "contextTokens"),
        (with(r#""contextTokens":null,"hosts":8"#), "MISSING_FIELD", "contextTokens"),
        (with(r#""contextTokens":"NaN","hosts":8"#), "WRONG_TYPE", "contextTokens"),
        (with(r#""contextTokens":100,"hosts":101"#), "INFEASIBLE", "hosts"),
        (with(r#""contextTokens":100,"hosts":0"#), "OUT_OF_RANGE", "hosts"),
        (with(r#""contextTokens":131072,"hosts":8,"passingTokens":20000"#), "OUT_OF_RANGE", "passingTokens"),
        (with(r#""contextTokens":131072,"hosts":8,"anchorTokens":20000"#), "OUT_OF_RANGE", "anchorTokens"),
        (with(r#""contextTokens":131072,"hosts":8,"anchorTokens":64"#), "OUT_OF_RANGE", "anchorTokens"),
        (with(r#""contextTokens":131072,"hosts":8,"strategy":"ring","passingTokens":64"#), "OUT_OF_RANGE", "passingTokens"),
        (with(r#""contextTokens":131072,"hosts":8,"strategy":"warp""#), "OUT_OF_RANGE", "strategy"),
        (with(r#""contextTokens":131072,"hosts":3,"strategy":"ulysses""#), "INFEASIBLE", "hosts"),
        (with(r#""contextTokens":131072,"hosts":8,"hostz":3"#), "UNKNOWN_FIELD", "hostz"),
        (with(r#""contextTokens":1000,"hosts":8,"queryTokens":500"#), "INFEASIBLE", "queryTokens"),
        (r#"{"contextTokens":1000,"hosts":2}"#.to_string(), "MISSING_FIELD", "model"),
        (format!("{{\"contextTokens\":1000,{HW},\"model\":{{\"layers\":32}}}}"), "MISSING_FIELD", "model.hidden"),
        ("{\"contextTokens\":".to_string(), "INVALID_JSON", ""),
    ];
    for (input, code, path) in cases.iter() {
        let (c, p, m) = error_of("plan", input);
        assert_eq!((c.as_str(), p.as_str()), (*code, *path), "{input} -> {m}");
        assert!(m.len() > 20 && (path.is_empty() || m.contains(path)), "message should name the field: {m}");
    }
}

#[test]
fn passing_more_than_host_0_can_give_is_infeasible() {
    // Host 0 holds 16384 tokens, 3968 of them already in every anchor.
    let (code, path, msg) = error_of("plan", &with(r#""contextTokens":131072,"hosts":8,"passingTokens":16000"#));
    assert_eq!((code.as_str(), path.as_str()), ("INFEASIBLE", "passingTokens"));
    assert!(msg.contains("12416"), "{msg}");
}

#[test]
fn unknown_operations_and_recommend_fields_are_reported() {
    assert_eq!(error_of("teleport", "{}").0, "UNKNOWN_OP");
    let (code, path, _) = error_of("recommend", &with(r#""contextTokens":131072,"maxHosts":8,"hosts":4"#));
    assert_eq!((code.as_str(), path.as_str()), ("UNKNOWN_FIELD", "hosts"));
}

/// Random mutations of a valid input: every output is JSON, and either an error with a
/// code or a plan whose numbers are all finite (the writer refuses non-finite numbers).
#[test]
fn no_input_crashes_or_yields_nan() {
    let base = with(r#""contextTokens":131072,"hosts":8,"queryTokens":128"#);
    let values = ["0", "-1", "1e308", "4294967297", "0.5", "null", "true", "\"x\"", "[]", "{}", "7", "2147483647", "1e-300"];
    let fields = ["contextTokens", "hosts", "queryTokens", "anchorTokens", "passingTokens", "prefixTokens", "layers", "hidden", "heads", "kvHeads", "headDim", "vocab", "bytesPerWeight", "matmulTflops", "linkGBs", "memoryGiB", "kvBytes"];
    let mut rng = Rng::fresh();
    for _ in 0..3000 {
        let seed = rng.next();
        let field = fields[(seed % fields.len() as u64) as usize];
        let value = values[((seed >> 20) % values.len() as u64) as usize];
        let input = if base.contains(&format!("\"{field}\":")) {
            let start = base.find(&format!("\"{field}\":")).unwrap() + field.len() + 3;
            let end = start + base[start..].find([',', '}']).unwrap();
            format!("{}{}{}", &base[..start], value, &base[end..])
        } else {
            base.replacen('{', &format!("{{\"{field}\":{value},"), 1)
        };
        for op in ["plan", "compare"] {
            let out = call(op, &input);
            assert!(parse(&out).is_ok(), "not JSON for {input}");
            assert!(!out.contains("NaN") && !out.contains("inf"), "{out}");
        }
    }
}
