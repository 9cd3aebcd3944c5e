//! One request message in, one decision out (pure): reply with a message built here (header flags,
//! EDNS, FORMERR/NOTIMP for what is not a plain query), forward the request upstream, or drop it;
//! and the encoding of replies for UDP, truncated (TC) when they exceed what the client accepts.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::DNSClass;

use super::answer::{resolve, Answer, Resolution, Zone};
use crate::services::ServiceCatalog;

/// The UDP payload this server accepts and advertises with EDNS (the DNS flag day 2020 value).
pub const EDNS_PAYLOAD: u16 = 1232;
/// A UDP reply's limit for clients without EDNS.
pub const CLASSIC_UDP_LIMIT: usize = 512;

/// What to do with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Reply(Message),
    Forward,
    /// Not a query (a response sent to us): no reply.
    Drop,
}

/// Decides about `request`.
pub fn handle(request: &Message, catalog: Option<&ServiceCatalog>, zone: Zone<'_>) -> Step {
    if request.metadata.message_type != MessageType::Query {
        return Step::Drop;
    }
    if request.metadata.op_code != OpCode::Query {
        return Step::Reply(reply(request, ResponseCode::NotImp));
    }
    let [query] = request.queries.as_slice() else {
        return Step::Reply(reply(request, ResponseCode::FormErr));
    };
    if query.query_class() != DNSClass::IN {
        return Step::Reply(reply(request, ResponseCode::NotImp));
    }
    match resolve(query, catalog, zone) {
        Resolution::Forward => Step::Forward,
        Resolution::Answer(answer) => Step::Reply(answered(request, answer)),
    }
}

/// A reply to `request` with `rcode` and no records.
pub fn reply(request: &Message, rcode: ResponseCode) -> Message {
    let mut m = Message::error_msg(request.metadata.id, request.metadata.op_code, rcode);
    m.metadata.recursion_desired = request.metadata.recursion_desired;
    m.metadata.recursion_available = true;
    m.metadata.checking_disabled = request.metadata.checking_disabled;
    m.queries = request.queries.clone();
    if request.edns.is_some() {
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        m.edns = Some(edns);
    }
    m
}

fn answered(request: &Message, answer: Answer) -> Message {
    let mut m = reply(request, answer.rcode);
    m.metadata.authoritative = answer.rcode != ResponseCode::ServFail;
    m.answers = answer.answers;
    m.authorities = answer.authorities;
    m.additionals = answer.additionals;
    m
}

/// The largest UDP reply the client of `request` accepts: 512 bytes, or its EDNS payload size (up to
/// what this server advertises).
pub fn udp_limit(request: &Message) -> usize {
    match &request.edns {
        None => CLASSIC_UDP_LIMIT,
        Some(edns) => usize::from(edns.max_payload().clamp(512, EDNS_PAYLOAD)),
    }
}

/// Encodes `response`; above `limit` bytes, only its header and question with TC set, so the client
/// retries over TCP.
pub fn encode(response: &Message, limit: usize) -> Result<Vec<u8>, hickory_proto::ProtoError> {
    let bytes = response.to_vec()?;
    if bytes.len() <= limit {
        return Ok(bytes);
    }
    let mut truncated = response.truncate();
    truncated.metadata.id = response.metadata.id;
    truncated.to_vec()
}

/// A FORMERR reply for bytes that are not a DNS message, if they hold at least a header to take the
/// id from.
pub fn format_error(bytes: &[u8]) -> Option<Vec<u8>> {
    if bytes.len() < 12 || bytes[2] & 0x80 != 0 {
        return None;
    }
    let id = u16::from_be_bytes([bytes[0], bytes[1]]);
    Message::error_msg(id, OpCode::Query, ResponseCode::FormErr).to_vec().ok()
}

/// The rcode of an encoded message, as CoreDNS labels it in metrics.
pub fn rcode_label(bytes: &[u8]) -> &'static str {
    match bytes.get(3).map(|b| b & 0x0f) {
        Some(0) => "NOERROR",
        Some(1) => "FORMERR",
        Some(2) => "SERVFAIL",
        Some(3) => "NXDOMAIN",
        Some(4) => "NOTIMP",
        Some(5) => "REFUSED",
        Some(_) => "OTHER",
        None => "MALFORMED",
    }
}

#[cfg(test)]
mod tests {
    use hickory_proto::op::Query;
    use hickory_proto::rr::{Name, RecordType};

    use super::*;
    use crate::dns::names::ClusterDomain;

    fn request(name: &str, qtype: RecordType) -> Message {
        let mut m = Message::new(4711, MessageType::Query, OpCode::Query);
        m.metadata.recursion_desired = true;
        m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
        m
    }

    fn zone(domain: &ClusterDomain) -> Zone<'_> {
        Zone { domain, serial: 1 }
    }

    /// A catalog with one headless Service of `n` ready endpoints.
    fn headless(n: u8) -> ServiceCatalog {
        let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "big", "namespace": "default"}, "spec": {"clusterIP": "None"}
        }))
        .expect("svc");
        let endpoints: Vec<serde_json::Value> =
            (1..=n).map(|i| serde_json::json!({"addresses": [format!("10.224.1.{i}")]})).collect();
        let slice: k8s_openapi::api::discovery::v1::EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "big-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "big"}},
            "addressType": "IPv4", "endpoints": endpoints
        }))
        .expect("slice");
        ServiceCatalog::build([&svc], [&slice])
    }

    #[test]
    fn cluster_answers_are_authoritative_replies_with_the_request_header() {
        let domain = ClusterDomain::new("cluster.local").expect("domain");
        let catalog = headless(2);
        let req = request("big.default.svc.cluster.local.", RecordType::A);
        let Step::Reply(m) = handle(&req, Some(&catalog), zone(&domain)) else { panic!("a reply") };
        assert_eq!(m.metadata.id, 4711);
        assert_eq!(m.metadata.message_type, MessageType::Response);
        assert!(m.metadata.authoritative && m.metadata.recursion_desired && m.metadata.recursion_available);
        assert_eq!(m.queries, req.queries);
        assert_eq!(m.answers.len(), 2);
        assert!(m.edns.is_none(), "no OPT for a client without EDNS");
        assert_eq!(handle(&request("example.com.", RecordType::A), Some(&catalog), zone(&domain)), Step::Forward);
    }

    #[test]
    fn what_is_not_a_plain_query_is_refused_or_dropped() {
        let domain = ClusterDomain::new("cluster.local").expect("domain");
        let rcode = |m: Message| match handle(&m, None, zone(&domain)) {
            Step::Reply(r) => Some(r.metadata.response_code),
            _ => None,
        };
        let mut update = request("x.cluster.local.", RecordType::A);
        update.metadata.op_code = OpCode::Update;
        assert_eq!(rcode(update), Some(ResponseCode::NotImp));
        let mut two = request("x.cluster.local.", RecordType::A);
        two.add_query(Query::query(Name::from_ascii("y.cluster.local.").expect("name"), RecordType::A));
        assert_eq!(rcode(two), Some(ResponseCode::FormErr));
        let mut chaos = request("version.bind.", RecordType::TXT);
        chaos.queries[0].set_query_class(DNSClass::CH);
        assert_eq!(rcode(chaos), Some(ResponseCode::NotImp));
        let mut response = request("x.cluster.local.", RecordType::A);
        response.metadata.message_type = MessageType::Response;
        assert_eq!(handle(&response, None, zone(&domain)), Step::Drop);
    }

    #[test]
    fn large_replies_are_truncated_for_udp_unless_edns_allows_them() {
        let domain = ClusterDomain::new("cluster.local").expect("domain");
        let catalog = headless(40);
        let mut req = request("big.default.svc.cluster.local.", RecordType::A);
        let Step::Reply(m) = handle(&req, Some(&catalog), zone(&domain)) else { panic!("a reply") };
        let full = encode(&m, usize::MAX).expect("encode");
        assert!(full.len() > 512, "40 A records do not fit 512 bytes: {}", full.len());
        let short = encode(&m, udp_limit(&req)).expect("encode");
        let parsed = Message::from_vec(&short).expect("parse");
        assert!(parsed.metadata.truncation && parsed.answers.is_empty());
        assert_eq!((parsed.metadata.id, parsed.queries.len()), (4711, 1));

        let mut edns = Edns::new();
        edns.set_max_payload(4096);
        req.edns = Some(edns);
        assert_eq!(udp_limit(&req), usize::from(EDNS_PAYLOAD));
        let Step::Reply(m) = handle(&req, Some(&catalog), zone(&domain)) else { panic!("a reply") };
        let bytes = encode(&m, udp_limit(&req)).expect("encode");
        let parsed = Message::from_vec(&bytes).expect("parse");
        assert!(!parsed.metadata.truncation);
        assert_eq!(parsed.answers.len(), 40);
        assert_eq!(parsed.edns.as_ref().map(Edns::max_payload), Some(EDNS_PAYLOAD), "OPT answered with OPT");
    }

    #[test]
    fn garbage_gets_formerr_when_it_has_an_id() {
        let reply = format_error(&[0x12, 0x34, 0x01, 0x00, 0xff, 0xff, 0, 0, 0, 0, 0, 0, 0xde]).expect("formerr");
        let parsed = Message::from_vec(&reply).expect("parse");
        assert_eq!((parsed.metadata.id, parsed.metadata.response_code), (0x1234, ResponseCode::FormErr));
        assert_eq!(rcode_label(&reply), "FORMERR");
        assert!(format_error(&[1, 2, 3]).is_none());
    }
}
