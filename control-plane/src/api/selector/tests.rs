//! Selector parsing and matching against upstream behaviour.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::*;

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

#[test]
fn label_selector_operators_match_as_upstream() {
    let web = labels(&[("app", "web"), ("tier", "front"), ("replicas", "3")]);
    let bare = labels(&[]);
    let cases: &[(&str, bool, bool)] = &[
        // selector, matches `web`, matches `bare`
        ("", true, true),
        ("app=web", true, false),
        ("app==web", true, false),
        ("app=db", false, false),
        ("app!=db", true, true),
        ("app!=web", false, true),
        ("tier in (front,back)", true, false),
        ("tier in (back)", false, false),
        ("tier notin (back)", true, true),
        ("tier notin (front)", false, true),
        ("app", true, false),
        ("!app", false, true),
        ("!missing", true, true),
        ("replicas>2", true, false),
        ("replicas>3", false, false),
        ("replicas<4", true, false),
        ("app>1", false, false),
        ("app=web,tier=front", true, false),
        ("app=web,tier=back", false, false),
        ("  app = web ,  tier in ( front , back )  ", true, false),
        ("app=", false, false),
        ("tier in (in,notin)", false, false),
    ];
    for (selector, want_web, want_bare) in cases {
        let parsed = LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(parsed.matches(&web), *want_web, "{selector} on web");
        assert_eq!(parsed.matches(&bare), *want_bare, "{selector} on no labels");
    }
}

#[test]
fn label_selector_empty_values_and_keywords_as_values() {
    let empty = labels(&[("a", "")]);
    for selector in ["a=", "a==", "a in ()", "a in (,x)", "a in (x,)", "a in (x,,y)"] {
        let parsed = LabelSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert!(parsed.matches(&empty), "{selector}");
    }
    let keyword = labels(&[("k", "in")]);
    assert!(LabelSelector::parse("k in (in)").expect("parse").matches(&keyword));
    assert!(LabelSelector::parse("k=in").expect("parse").matches(&keyword));
}

#[test]
fn label_selector_keys_with_prefixes() {
    let node = labels(&[("node-role.kubernetes.io/control-plane", ""), ("kubernetes.io/os", "linux")]);
    let parsed = LabelSelector::parse("node-role.kubernetes.io/control-plane,kubernetes.io/os=linux").expect("parse");
    assert!(parsed.matches(&node));
    assert!(!parsed.is_empty());
    assert!(LabelSelector::parse("").expect("parse").is_empty());
}

#[test]
fn label_selector_syntax_errors_name_the_offending_part() {
    let cases: &[(&str, &str)] = &[
        ("a=b,", "found '', expected: identifier after ','"),
        ("a=b c=d", "found 'c', expected: ',' or 'end of string'"),
        ("=b", "found '=', expected: !, identifier, or 'end of string'"),
        ("a in b", "unable to parse requirement: found 'b' expected: '('"),
        ("a in (b", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a (b)", "unable to parse requirement: found '(' after key \"a\""),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("a=b=c", "found '=', expected: ',' or 'end of string'"),
        ("a>b", "unable to parse requirement: invalid value \"b\" for key \"a\""),
        ("a b c", "unable to parse requirement: found 'b' after key \"a\""),
        ("a/b/c=x", "unable to parse requirement: invalid label key \"a/b/c\""),
        ("Example.com/x=y", "unable to parse requirement: invalid label key \"Example.com/x\": prefix part"),
        ("-a=b", "unable to parse requirement: invalid label key \"-a\": name part must consist"),
        ("a=-b", "unable to parse requirement: invalid label value \"-b\" for key \"a\""),
        ("a=b!c", "found '!', expected: ',' or 'end of string'"),
    ];
    for (selector, want) in cases {
        let err = LabelSelector::parse(selector).expect_err(selector).to_string();
        assert!(err.starts_with(want), "{selector}: got {err:?}, want prefix {want:?}");
    }
    let long = format!("a={}", "x".repeat(64));
    let err = LabelSelector::parse(&long).expect_err("long value").to_string();
    assert!(err.contains("must be no more than 63 characters"), "{err}");
    let long_key = format!("{}=x", "k".repeat(64));
    let err = LabelSelector::parse(&long_key).expect_err("long key").to_string();
    assert!(err.contains("name part must be no more than 63 characters"), "{err}");
}

#[test]
fn label_selector_prints_canonically() {
    let parsed = LabelSelector::parse("tier notin (b,a), app=web, !gone, x, n>1, k==v, j!=w").expect("parse");
    assert_eq!(parsed.to_string(), "app=web,!gone,j!=w,k==v,n>1,tier notin (a,b),x");
}

#[test]
fn label_selector_from_json_as_label_selector_as_selector() {
    let sel = LabelSelector::from_json(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["front", "back"]},
            {"key": "canary", "operator": "DoesNotExist"},
        ],
    }))
    .expect("from_json");
    assert_eq!(sel.to_string(), "app=web,!canary,tier in (back,front)");
    assert!(sel.matches(&labels(&[("app", "web"), ("tier", "back")])));
    assert!(!sel.matches(&labels(&[("app", "web"), ("tier", "back"), ("canary", "1")])));

    let everything = LabelSelector::from_json(&json!({})).expect("empty");
    assert!(everything.is_empty() && everything.matches(&labels(&[])));
    let nothing = LabelSelector::from_json(&Value::Null).expect("null");
    assert!(!nothing.is_empty() && !nothing.matches(&labels(&[])));
    assert_eq!(nothing.to_string(), "");

    let bad = LabelSelector::from_json(&json!({"matchExpressions": [{"key": "a", "operator": "Gt"}]}));
    assert_eq!(bad.expect_err("bad operator").to_string(), "\"Gt\" is not a valid label selector operator");
    let bad = LabelSelector::from_json(&json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}));
    assert!(bad.expect_err("empty in").to_string().contains("values set can't be empty"));
}

fn pod(node: Option<&str>, phase: &str) -> Value {
    let mut pod = json!({
        "metadata": {"name": "web-1", "namespace": "default"},
        "spec": {"restartPolicy": "Always"},
        "status": {"phase": phase, "podIPs": [{"ip": "10.0.0.7"}]},
    });
    if let Some(node) = node {
        pod["spec"]["nodeName"] = json!(node);
    }
    pod
}

#[test]
fn field_selector_matches_dotted_paths() {
    let scheduled = pod(Some("node-a"), "Running");
    let pending = pod(None, "Pending");
    let cases: &[(&str, bool, bool)] = &[
        // selector, matches `scheduled`, matches `pending`
        ("", true, true),
        ("metadata.name=web-1", true, true),
        ("metadata.name==web-1", true, true),
        ("metadata.name!=web-1", false, false),
        ("metadata.namespace=default,status.phase=Running", true, false),
        ("spec.nodeName=node-a", true, false),
        ("spec.nodeName=", false, true),
        ("spec.nodeName!=", true, false),
        ("spec.host=node-a", true, false),
        ("status.phase!=Running", false, true),
        ("status.podIP=10.0.0.7", true, true),
        ("spec.hostNetwork=false", true, true),
        ("spec.hostNetwork=", false, false),
        ("spec.missing=", true, true),
    ];
    for (selector, want_scheduled, want_pending) in cases {
        let parsed = FieldSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(parsed.matches(&scheduled), *want_scheduled, "{selector} on scheduled");
        assert_eq!(parsed.matches(&pending), *want_pending, "{selector} on pending");
    }
}

#[test]
fn field_selector_values_with_escapes() {
    let event = json!({"metadata": {"name": "e"}, "reason": "a,b=c\\d", "count": 3, "source": {}, "reportingComponent": "kubelet"});
    let parsed = FieldSelector::parse(r"reason=a\,b\=c\\d").expect("parse");
    assert!(parsed.matches(&event));
    assert_eq!(parsed.to_string(), r"reason=a\,b\=c\\d");
    assert_eq!(parsed.exact_match("reason"), Some("a,b=c\\d"));
    assert!(FieldSelector::parse("count=3").expect("parse").matches(&event));
    assert!(FieldSelector::parse("source=kubelet").expect("parse").matches(&event));
    let two = FieldSelector::parse(r"reason!=x\,y,metadata.name=e").expect("parse");
    assert!(two.matches(&event));
    assert_eq!(two.to_string(), r"metadata.name=e,reason!=x\,y");
    assert_eq!(two.exact_match("reason"), None);
}

#[test]
fn field_selector_syntax_errors() {
    let cases: &[(&str, &str)] = &[
        ("foo", "invalid selector: 'foo'; can't understand 'foo'"),
        ("a=b,foo", "invalid selector: 'a=b,foo'; can't understand 'foo'"),
        (r"a=b\x", r"invalid field selector: invalid escape sequence: \x"),
        ("a=b\\", r"invalid field selector: invalid escape sequence: \"),
        ("a=b=c", "invalid field selector: unescaped character in value: ="),
    ];
    for (selector, want) in cases {
        assert_eq!(FieldSelector::parse(selector).expect_err(selector).to_string(), *want, "{selector}");
    }
    assert!(FieldSelector::parse("").expect("empty").is_empty());
    assert!(FieldSelector::parse(",").expect("commas").is_empty());
}

#[test]
fn field_selector_validate_for_upstream_allow_lists() {
    let cases: &[(&str, &str, &str, bool)] = &[
        ("", "pods", "spec.nodeName=a", true),
        ("", "pods", "status.phase=Running,spec.schedulerName=x,status.nominatedNodeName=", true),
        ("", "pods", "spec.hostNetwork=true,spec.serviceAccountName=x,status.podIP=1.2.3.4", true),
        ("", "pods", "spec.restartPolicy=Never,metadata.namespace=x", true),
        ("", "pods", "spec.containers=x", false),
        ("", "configmaps", "metadata.name=a", true),
        ("", "configmaps", "data.x=a", false),
        ("", "events", "involvedObject.kind=Pod,involvedObject.name=a,involvedObject.uid=u", true),
        ("", "events", "involvedObject.fieldPath=x,involvedObject.resourceVersion=1", true),
        ("", "events", "involvedObject.apiVersion=v1,involvedObject.namespace=d", true),
        ("", "events", "reason=Started,type=Normal,source=kubelet,reportingComponent=k", true),
        ("", "events", "message=x", false),
        ("", "secrets", "type=Opaque", true),
        ("", "configmaps", "type=Opaque", false),
        ("", "nodes", "spec.unschedulable=false,metadata.name=n", true),
        ("", "namespaces", "status.phase=Active", true),
        ("apps", "replicasets", "status.replicas=0", true),
        ("apps", "deployments", "status.replicas=0", false),
        ("batch", "jobs", "status.successful=1", true),
        ("apps", "deployments", "foo=bar", false),
    ];
    for (group, resource, selector, ok) in cases {
        let parsed = FieldSelector::parse(selector).unwrap_or_else(|e| panic!("{selector}: {e}"));
        assert_eq!(parsed.validate_for(group, resource).is_ok(), *ok, "{group}/{resource}: {selector}");
    }
    let err = FieldSelector::parse("foo=bar").expect("parse").validate_for("", "pods").expect_err("foo");
    assert_eq!(err, SelectorError::UnsupportedField("foo".to_owned()));
    assert_eq!(err.to_string(), "field label not supported: foo");
}

#[test]
fn field_selector_reads_typed_and_defaulted_fields() {
    let node = json!({"metadata": {"name": "n"}, "spec": {}});
    assert!(FieldSelector::parse("spec.unschedulable=false").expect("parse").matches(&node));
    let cordoned = json!({"metadata": {"name": "n"}, "spec": {"unschedulable": true}});
    assert!(FieldSelector::parse("spec.unschedulable=true").expect("parse").matches(&cordoned));
    let job = json!({"status": {"succeeded": 2}});
    assert!(FieldSelector::parse("status.successful=2").expect("parse").matches(&job));
    assert!(FieldSelector::parse("status.replicas=0").expect("parse").matches(&job));
}
