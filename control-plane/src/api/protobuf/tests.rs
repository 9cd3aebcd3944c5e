//! End-to-end decoder tests on bodies built the way Go's marshallers write them.

use serde_json::json;

use super::test_encoder::{body, object_meta, Msg};
use super::{decode_object, ProtobufError};

fn int_or_string_int(value: i64) -> Msg {
    Msg::new().int(1, 0).int(2, value).string(3, "")
}

fn int_or_string_str(value: &str) -> Msg {
    Msg::new().int(1, 1).int(2, 0).string(3, value)
}

fn quantity(value: &str) -> Msg {
    Msg::new().string(1, value)
}

#[test]
fn decodes_namespace_dropping_unset_fields() {
    let ns = Msg::new()
        .msg(1, object_meta("team-a", "").map_str(11, "env", "dev"))
        .msg(2, Msg::new())
        .msg(3, Msg::new().string(1, ""));
    let got = decode_object(&body("v1", "Namespace", ns)).expect("namespace decodes");
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": "team-a", "labels": {"env": "dev"}},
            "spec": {},
            "status": {}
        })
    );
}

fn busybox_container() -> Msg {
    let http_get = Msg::new().string(1, "/healthz").msg(2, int_or_string_str("http")).string(3, "").string(4, "HTTP");
    let probe = Msg::new().msg(1, Msg::new().msg(2, http_get)).int(2, 0).int(3, 1).int(4, 10).int(5, 0).int(6, 3);
    let resources = Msg::new().map_msg(1, "cpu", quantity("500m")).map_msg(1, "memory", quantity("128Mi")).map_msg(
        2,
        "cpu",
        quantity("250m"),
    );
    Msg::new()
        .string(1, "busybox")
        .string(2, "busybox")
        .string(3, "sleep")
        .string(3, "3600")
        .string(5, "")
        .msg(6, Msg::new().string(1, "http").int(2, 0).int(3, 8080).string(4, "TCP").string(5, ""))
        .msg(7, Msg::new().string(1, "MODE").string(2, "demo"))
        .msg(8, resources)
        .msg(10, probe)
        .string(13, "")
        .string(14, "")
        .bool(16, false)
        .bool(17, false)
        .bool(18, false)
        .string(20, "")
}

#[test]
fn decodes_deployment_with_pod_template() {
    let labels = |m: Msg| m.map_str(11, "app", "d1");
    let pod_spec = Msg::new()
        .msg(2, busybox_container())
        .string(3, "")
        .string(6, "")
        .string(8, "")
        .string(9, "")
        .string(10, "")
        .bool(11, false)
        .bool(12, false)
        .bool(13, false)
        .msg(14, Msg::new())
        .string(16, "")
        .string(17, "")
        .string(19, "")
        .int(4, 30);
    let spec = Msg::new()
        .int(1, 2)
        .msg(2, Msg::new().map_str(1, "app", "d1"))
        .msg(3, Msg::new().msg(1, labels(Msg::new().string(1, ""))).msg(2, pod_spec))
        .msg(4, Msg::new().string(1, ""))
        .int(5, 0)
        .bool(7, false);
    let meta = labels(object_meta("d1", "default")).msg(8, Msg::new().int(1, 1_767_323_045));
    let deployment = Msg::new().msg(1, meta).msg(2, spec).msg(3, Msg::new().int(1, 0));
    let got = decode_object(&body("apps/v1", "Deployment", deployment)).expect("deployment decodes");
    assert_eq!(
        got,
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {
                "name": "d1",
                "namespace": "default",
                "labels": {"app": "d1"},
                "creationTimestamp": "2026-01-02T03:04:05Z"
            },
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "d1"}},
                "template": {
                    "metadata": {"labels": {"app": "d1"}},
                    "spec": {
                        "terminationGracePeriodSeconds": 30,
                        "containers": [{
                            "name": "busybox",
                            "image": "busybox",
                            "command": ["sleep", "3600"],
                            "ports": [{"name": "http", "containerPort": 8080, "protocol": "TCP"}],
                            "env": [{"name": "MODE", "value": "demo"}],
                            "resources": {
                                "limits": {"cpu": "500m", "memory": "128Mi"},
                                "requests": {"cpu": "250m"}
                            },
                            "livenessProbe": {
                                "httpGet": {"path": "/healthz", "port": "http", "scheme": "HTTP"},
                                "timeoutSeconds": 1,
                                "periodSeconds": 10,
                                "failureThreshold": 3
                            }
                        }],
                        "securityContext": {}
                    }
                },
                "strategy": {}
            },
            "status": {}
        })
    );
}

#[test]
fn keeps_explicit_zero_in_pointer_fields() {
    let spec = Msg::new().int(1, 0).int(5, 0).msg(4, Msg::new());
    let deployment = Msg::new().msg(1, object_meta("d0", "default")).msg(2, spec);
    let got = decode_object(&body("apps/v1", "Deployment", deployment)).expect("deployment decodes");
    assert_eq!(got["spec"], json!({"replicas": 0, "strategy": {}}));
}

#[test]
fn decodes_service_int_target_port() {
    let port =
        Msg::new().string(1, "5678-8080").string(2, "TCP").int(3, 5678).msg(4, int_or_string_int(8080)).int(5, 0);
    let spec = Msg::new().msg(1, port).map_str(2, "app", "web").string(3, "").string(4, "ClusterIP");
    let service = Msg::new().msg(1, object_meta("web", "default")).msg(2, spec).msg(3, Msg::new());
    let got = decode_object(&body("v1", "Service", service)).expect("service decodes");
    assert_eq!(
        got["spec"],
        json!({
            "ports": [{"name": "5678-8080", "protocol": "TCP", "port": 5678, "targetPort": 8080}],
            "selector": {"app": "web"},
            "type": "ClusterIP"
        })
    );
}

#[test]
fn decodes_secret_bytes_as_base64() {
    let secret = Msg::new()
        .msg(1, object_meta("creds", "default"))
        .msg(2, Msg::new().string(1, "password").bytes(2, b"s3cr\xffet"))
        .string(3, "Opaque");
    let got = decode_object(&body("v1", "Secret", secret)).expect("secret decodes");
    assert_eq!(
        got,
        json!({
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "creds", "namespace": "default"},
            "data": {"password": "czNjcv9ldA=="},
            "type": "Opaque"
        })
    );
}

#[test]
fn decodes_delete_options_under_any_api_version() {
    let options = Msg::new().int(1, 0).msg(2, Msg::new().string(1, "uid-1")).string(4, "Background").string(5, "All");
    for api_version in ["v1", "meta.k8s.io/v1"] {
        let got = decode_object(&body(api_version, "DeleteOptions", options.clone())).expect("delete options decode");
        assert_eq!(
            got,
            json!({
                "apiVersion": api_version,
                "kind": "DeleteOptions",
                "gracePeriodSeconds": 0,
                "preconditions": {"uid": "uid-1"},
                "propagationPolicy": "Background",
                "dryRun": ["All"]
            })
        );
    }
}

#[test]
fn decodes_eviction_and_embedded_json() {
    let eviction = Msg::new().msg(1, object_meta("pod-a", "default")).msg(2, Msg::new().int(1, 5));
    let got = decode_object(&body("policy/v1", "Eviction", eviction)).expect("eviction decodes");
    assert_eq!(got["deleteOptions"], json!({"gracePeriodSeconds": 5}));

    let revision =
        Msg::new().msg(1, object_meta("rev", "default")).msg(2, Msg::new().bytes(1, br#"{"spec":{"x":1}}"#)).int(3, 4);
    let got = decode_object(&body("apps/v1", "ControllerRevision", revision)).expect("revision decodes");
    assert_eq!(got["data"], json!({"spec": {"x": 1}}));
    assert_eq!(got["revision"], json!(4));
}

#[test]
fn skips_unknown_fields() {
    let ns = Msg::new().msg(1, object_meta("x", "").string(999, "future")).varint(77, 5);
    let got = decode_object(&body("v1", "Namespace", ns)).expect("namespace decodes");
    assert_eq!(got["metadata"], json!({"name": "x"}));
}

#[test]
fn rejects_bad_bodies_with_errors() {
    assert_eq!(decode_object(b"{\"kind\":\"Namespace\"}"), Err(ProtobufError::MissingMagic));
    assert!(matches!(
        decode_object(&body("v1", "Gadget", Msg::new())),
        Err(ProtobufError::UnknownKind { ref kind, .. }) if kind == "Gadget"
    ));
    assert_eq!(decode_object(b"k8s\0"), Err(ProtobufError::MissingTypeMeta));

    // Protobuf is not self-delimiting: a cut at a field boundary is a valid shorter message, but a cut
    // anywhere inside the raw object record must be reported. The body ends with two 2-byte empty strings.
    let good = body("v1", "Namespace", Msg::new().msg(1, object_meta("x", "")));
    let raw_start = 4 + 2 + Msg::new().string(1, "v1").string(2, "Namespace").into_bytes().len();
    for cut in raw_start + 1..good.len() - 4 {
        assert!(decode_object(&good[..cut]).is_err(), "truncation at {cut} of {} was accepted", good.len());
    }
    assert!(decode_object(&good[..good.len() - 1]).is_err(), "a cut string field must be an error");
    let bad_string = body("v1", "Namespace", Msg::new().msg(1, Msg::new().bytes(1, b"\xff\xfe")));
    assert!(matches!(decode_object(&bad_string), Err(ProtobufError::InvalidUtf8 { .. })));
    let wrong_wire = body("v1", "Namespace", Msg::new().msg(1, Msg::new().varint(1, 3)));
    assert!(matches!(decode_object(&wrong_wire), Err(ProtobufError::WireTypeMismatch { .. })));
    let bad_json = body("apps/v1", "ControllerRevision", Msg::new().msg(2, Msg::new().bytes(1, b"{nope")));
    assert!(matches!(decode_object(&bad_json), Err(ProtobufError::InvalidEmbeddedJson { .. })));
}

#[test]
fn garbage_never_panics() {
    // A deterministic pseudo-random stream: every prefix and mutation must give Ok or Err, never a panic.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let good = body("apps/v1", "Deployment", Msg::new().msg(1, object_meta("d", "ns")).msg(2, Msg::new().int(1, 3)));
    for _ in 0..2000 {
        let mut mutated = good.clone();
        for _ in 0..3 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = 4 + (state as usize) % (mutated.len() - 4);
            mutated[at] = (state >> 32) as u8;
        }
        let _ = decode_object(&mutated);
    }
}

#[test]
fn limits_nesting_through_embedded_objects() {
    // A ControllerRevision whose data is itself a k8s\0 ControllerRevision body, 200 levels deep.
    let deep = (0..200).fold(body("v1", "Namespace", Msg::new()), |inner, _| {
        body("apps/v1", "ControllerRevision", Msg::new().msg(2, Msg::new().bytes(1, &inner)))
    });
    assert!(matches!(decode_object(&deep), Err(ProtobufError::TooDeep(_))));
    let shallow = body(
        "apps/v1",
        "ControllerRevision",
        Msg::new().msg(2, Msg::new().bytes(1, &body("v1", "Namespace", Msg::new()))),
    );
    let got = decode_object(&shallow).expect("one level of embedding decodes");
    assert_eq!(got["data"], json!({"apiVersion": "v1", "kind": "Namespace"}));
}

#[test]
fn decodes_micro_time_and_negative_int32() {
    let spec = Msg::new()
        .string(1, "")
        .int(2, -1)
        .msg(4, Msg::new().int(1, 1_767_323_045).int(2, 123_456_789))
        .msg(3, Msg::new());
    let lease = Msg::new().msg(1, object_meta("l", "kube-node-lease")).msg(2, spec);
    let got = decode_object(&body("coordination.k8s.io/v1", "Lease", lease)).expect("lease decodes");
    assert_eq!(
        got["spec"],
        json!({"holderIdentity": "", "leaseDurationSeconds": -1, "renewTime": "2026-01-02T03:04:05.123456Z"})
    );
}
