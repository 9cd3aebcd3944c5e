//! The etcd `Watch` service: one session per gRPC stream, one task per watch in it. Watch ids are
//! chosen by the client (when positive) or assigned in order from 0, as etcd does.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;
use tonic::{Request, Response, Status, Streaming};

use super::convert::event_to_pb;
use super::header::Header;
use crate::error::{RequestError, StoreError};
use crate::mvcc::model::KeyRange;
use crate::proto::etcdserverpb as pb;
use crate::proto::etcdserverpb::watch_server::Watch;
use crate::store::Store;
use crate::watch::watcher::WatchSpec;

type Out = mpsc::Sender<Result<pb::WatchResponse, Status>>;

pub struct WatchService {
    store: Store,
    progress_interval: Duration,
}

impl WatchService {
    pub fn new(store: Store, progress_interval: Duration) -> Self {
        Self { store, progress_interval }
    }
}

type WatchStream = Pin<Box<dyn Stream<Item = Result<pb::WatchResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = WatchStream;

    async fn watch(&self, req: Request<Streaming<pb::WatchRequest>>) -> Result<Response<Self::WatchStream>, Status> {
        let incoming = req.into_inner();
        let (tx, rx) = mpsc::channel(256);
        let session = Session {
            store: self.store.clone(),
            header: Header::new(self.store.clone()),
            out: tx,
            watches: HashMap::new(),
            next_id: 0,
            progress_interval: self.progress_interval,
        };
        tokio::spawn(session.run(incoming));
        Ok(Response::new(Box::pin(tokio_stream::wrappers::ReceiverStream::new(rx))))
    }
}

struct WatchTask {
    handle: JoinHandle<()>,
    progress: Arc<AtomicI64>,
}

struct Session {
    store: Store,
    header: Header,
    out: Out,
    watches: HashMap<i64, WatchTask>,
    next_id: i64,
    progress_interval: Duration,
}

impl Session {
    async fn run(mut self, mut incoming: Streaming<pb::WatchRequest>) {
        let closed = self.store.closed();
        tokio::pin!(closed);
        loop {
            let msg = tokio::select! {
                m = incoming.next() => m,
                _ = &mut closed => break,
            };
            let Some(Ok(msg)) = msg else { break };
            use pb::watch_request::RequestUnion as U;
            let ok = match msg.request_union {
                Some(U::CreateRequest(c)) => self.create(c).await,
                Some(U::CancelRequest(c)) => self.cancel(c.watch_id).await,
                Some(U::ProgressRequest(_)) => self.progress().await,
                None => true,
            };
            self.watches.retain(|_, w| !w.handle.is_finished());
            if !ok {
                break;
            }
        }
        for (_, w) in self.watches.drain() {
            w.handle.abort();
        }
    }

    async fn send(&self, resp: pb::WatchResponse) -> bool {
        self.out.send(Ok(resp)).await.is_ok()
    }

    async fn create(&mut self, c: pb::WatchCreateRequest) -> bool {
        let id = if c.watch_id > 0 {
            if self.watches.contains_key(&c.watch_id) {
                return self
                    .send(pb::WatchResponse {
                        header: Some(self.header.now()),
                        watch_id: c.watch_id,
                        created: true,
                        canceled: true,
                        cancel_reason: "etcdserver: duplicate watch ID".into(),
                        ..Default::default()
                    })
                    .await;
            }
            c.watch_id
        } else {
            while self.watches.contains_key(&self.next_id) {
                self.next_id += 1;
            }
            let id = self.next_id;
            self.next_id += 1;
            id
        };
        let mut filter_put = false;
        let mut filter_delete = false;
        for f in &c.filters {
            match pb::watch_create_request::FilterType::try_from(*f) {
                Ok(pb::watch_create_request::FilterType::Noput) => filter_put = true,
                Ok(pb::watch_create_request::FilterType::Nodelete) => filter_delete = true,
                Err(_) => {}
            }
        }
        let spec = WatchSpec {
            range: KeyRange::new(c.key, c.range_end),
            start_revision: c.start_revision,
            prev_kv: c.prev_kv,
            filter_put,
            filter_delete,
        };
        let watcher = self.store.watch(spec);
        let progress = watcher.progress();
        if !self
            .send(pb::WatchResponse {
                header: Some(self.header.now()),
                watch_id: id,
                created: true,
                ..Default::default()
            })
            .await
        {
            return false;
        }
        let notify = c.progress_notify.then_some(self.progress_interval);
        let handle = tokio::spawn(run_watch(watcher, id, self.header.clone(), self.out.clone(), notify));
        self.watches.insert(id, WatchTask { handle, progress });
        true
    }

    async fn cancel(&mut self, id: i64) -> bool {
        if let Some(w) = self.watches.remove(&id) {
            w.handle.abort();
        }
        self.send(pb::WatchResponse {
            header: Some(self.header.now()),
            watch_id: id,
            canceled: true,
            ..Default::default()
        })
        .await
    }

    /// Answers a progress request with a revision every watch of the session has delivered up to.
    async fn progress(&self) -> bool {
        let revision = self
            .watches
            .values()
            .map(|w| w.progress.load(Ordering::Acquire))
            .min()
            .unwrap_or_else(|| self.store.revision());
        self.send(pb::WatchResponse { header: Some(self.header.at(revision)), watch_id: -1, ..Default::default() })
            .await
    }
}

async fn run_watch(
    mut watcher: crate::watch::watcher::Watcher,
    id: i64,
    header: Header,
    out: Out,
    progress_notify: Option<Duration>,
) {
    let mut tick = progress_notify.map(|d| tokio::time::interval_at(tokio::time::Instant::now() + d, d));
    loop {
        let next = tokio::select! {
            r = watcher.next() => Some(r),
            _ = async { match tick.as_mut() { Some(t) => { t.tick().await; } None => std::future::pending::<()>().await } } => None,
        };
        let resp = match next {
            None => pb::WatchResponse {
                header: Some(header.at(watcher.next_revision() - 1)),
                watch_id: id,
                ..Default::default()
            },
            Some(Ok(batch)) => pb::WatchResponse {
                header: Some(header.at(batch.revision)),
                watch_id: id,
                events: batch.events.into_iter().map(event_to_pb).collect(),
                ..Default::default()
            },
            Some(Err(StoreError::Request(RequestError::Compacted { compact_revision, .. }))) => {
                let _ = out
                    .send(Ok(pb::WatchResponse {
                        header: Some(header.now()),
                        watch_id: id,
                        canceled: true,
                        compact_revision,
                        cancel_reason: "etcdserver: mvcc: required revision has been compacted".into(),
                        ..Default::default()
                    }))
                    .await;
                return;
            }
            Some(Err(e)) => {
                let _ = out
                    .send(Ok(pb::WatchResponse {
                        header: Some(header.now()),
                        watch_id: id,
                        canceled: true,
                        cancel_reason: format!("etcdserver: {e}"),
                        ..Default::default()
                    }))
                    .await;
                return;
            }
        };
        if out.send(Ok(resp)).await.is_err() {
            return;
        }
    }
}
