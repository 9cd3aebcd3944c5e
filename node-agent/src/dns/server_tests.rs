//! Tests of [`super`] over loopback sockets: cluster answers over UDP (truncated when large) and TCP,
//! forwarding, SERVFAIL when the upstream is silent, and the metrics.

use std::net::Ipv4Addr;

use hickory_proto::op::{Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Name, RData, RecordType};

use super::*;

fn catalog(endpoints: u8) -> ServiceCatalog {
    let svc: k8s_openapi::api::core::v1::Service = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "big", "namespace": "default"}, "spec": {"clusterIP": "None"}
    }))
    .expect("svc");
    let eps: Vec<serde_json::Value> =
        (1..=endpoints).map(|i| serde_json::json!({"addresses": [format!("10.224.1.{i}")]})).collect();
    let slice: k8s_openapi::api::discovery::v1::EndpointSlice = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "big-1", "namespace": "default", "labels": {"kubernetes.io/service-name": "big"}},
        "addressType": "IPv4", "endpoints": eps
    }))
    .expect("slice");
    ServiceCatalog::build([&svc], [&slice])
}

fn query(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::new(id, MessageType::Query, OpCode::Query);
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    m.to_vec().expect("encode")
}

/// A fake upstream: answers `up.example.` with 192.0.2.7, ignores everything else.
async fn upstream() -> SocketAddr {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let addr = socket.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        while let Ok((n, peer)) = socket.recv_from(&mut buf).await {
            let Ok(request) = Message::from_vec(&buf[..n]) else { continue };
            if request.queries[0].name().to_ascii() != "up.example." {
                continue;
            }
            let mut reply = Message::response(request.metadata.id, OpCode::Query);
            reply.queries = request.queries.clone();
            reply.add_answer(hickory_proto::rr::Record::from_rdata(
                request.queries[0].name().clone(),
                60,
                RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, 7))),
            ));
            let _ = socket.send_to(&reply.to_vec().expect("encode"), peer).await;
        }
    });
    addr
}

async fn udp_ask(server: SocketAddr, request: &[u8]) -> Message {
    let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    socket.send_to(request, server).await.expect("send");
    let mut buf = vec![0u8; 65_535];
    let n = tokio::time::timeout(Duration::from_secs(5), socket.recv(&mut buf))
        .await
        .expect("reply in time")
        .expect("recv");
    Message::from_vec(&buf[..n]).expect("reply parses")
}

async fn tcp_ask(server: SocketAddr, request: &[u8]) -> Message {
    let mut stream = TcpStream::connect(server).await.expect("connect");
    stream.write_all(&u16::try_from(request.len()).expect("len").to_be_bytes()).await.expect("write");
    stream.write_all(request).await.expect("write");
    let len = stream.read_u16().await.expect("len");
    let mut buf = vec![0u8; usize::from(len)];
    stream.read_exact(&mut buf).await.expect("reply");
    Message::from_vec(&buf).expect("reply parses")
}

#[tokio::test]
async fn serves_cluster_names_and_forwards_the_rest_over_udp_and_tcp() {
    let (_catalog_tx, catalog_rx) = watch::channel(Some(Arc::new(catalog(40))));
    let (_stop_tx, stop_rx) = watch::channel(false);
    let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let metrics = Arc::new(AgentMetrics::new().expect("metrics"));
    let start = |upstreams: Vec<SocketAddr>| {
        let (catalog_rx, stop_rx, metrics) = (catalog_rx.clone(), stop_rx.clone(), metrics.clone());
        async move {
            let sockets = DnsSockets::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
            let addr = sockets.local_addr().expect("addr");
            let server = Arc::new(DnsServer {
                domain: ClusterDomain::new("cluster.local").expect("domain"),
                serial: 1,
                upstreams: Upstreams::new(upstreams, Duration::from_millis(300)),
                catalog: catalog_rx,
                metrics,
            });
            tokio::spawn(server.run(sockets, stop_rx));
            addr
        }
    };
    let server = start(vec![upstream().await]).await;

    // 40 A records do not fit 512 bytes: TC over UDP, everything over TCP.
    let big = query(1, "big.default.svc.cluster.local.", RecordType::A);
    let udp = udp_ask(server, &big).await;
    assert!(udp.metadata.truncation && udp.answers.is_empty());
    let tcp = tcp_ask(server, &big).await;
    assert_eq!((tcp.metadata.id, tcp.answers.len(), tcp.metadata.truncation), (1, 40, false));
    assert!(tcp.metadata.authoritative);

    let missing = udp_ask(server, &query(2, "nope.default.svc.cluster.local.", RecordType::A)).await;
    assert_eq!(missing.metadata.response_code, ResponseCode::NXDomain);

    let forwarded = udp_ask(server, &query(3, "up.example.", RecordType::A)).await;
    assert_eq!(forwarded.metadata.id, 3);
    assert_eq!(forwarded.answers.len(), 1);
    assert_eq!(forwarded.answers[0].data, RData::A(hickory_proto::rr::rdata::A(Ipv4Addr::new(192, 0, 2, 7))));

    // An upstream that never answers: SERVFAIL once its deadline passed.
    let failing = start(vec![silent.local_addr().expect("addr")]).await;
    let failed = udp_ask(failing, &query(4, "up.example.", RecordType::A)).await;
    assert_eq!((failed.metadata.id, failed.metadata.response_code), (4, ResponseCode::ServFail));

    let text = metrics.render().expect("metrics");
    for series in [
        "gantry_node_agent_dns_requests_total{rcode=\"NOERROR\",source=\"cluster\"} 2",
        "gantry_node_agent_dns_requests_total{rcode=\"NXDOMAIN\",source=\"cluster\"} 1",
        "gantry_node_agent_dns_requests_total{rcode=\"NOERROR\",source=\"upstream\"} 1",
        "gantry_node_agent_dns_requests_total{rcode=\"SERVFAIL\",source=\"upstream\"} 1",
    ] {
        assert!(text.contains(series), "{series} missing from\n{text}");
    }
}

#[tokio::test]
async fn until_the_catalog_arrives_cluster_names_get_servfail() {
    let (catalog_tx, catalog_rx) = watch::channel(None);
    let (_stop_tx, stop_rx) = watch::channel(false);
    let sockets = DnsSockets::bind("127.0.0.1:0".parse().expect("addr")).await.expect("bind");
    let addr = sockets.local_addr().expect("addr");
    let server = Arc::new(DnsServer {
        domain: ClusterDomain::new("cluster.local").expect("domain"),
        serial: 1,
        upstreams: Upstreams::new(Vec::new(), Duration::from_millis(100)),
        catalog: catalog_rx,
        metrics: Arc::new(AgentMetrics::new().expect("metrics")),
    });
    tokio::spawn(server.run(sockets, stop_rx));
    let name = "big.default.svc.cluster.local.";
    assert_eq!(udp_ask(addr, &query(1, name, RecordType::A)).await.metadata.response_code, ResponseCode::ServFail);
    catalog_tx.send_replace(Some(Arc::new(catalog(1))));
    let answered = udp_ask(addr, &query(2, name, RecordType::A)).await;
    assert_eq!((answered.metadata.response_code, answered.answers.len()), (ResponseCode::NoError, 1));
}
