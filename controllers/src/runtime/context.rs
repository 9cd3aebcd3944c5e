//! What every controller's reconcile needs: the API client, the shared informers and the event
//! recorder.

use std::sync::Arc;

use kube::Client;

use super::events::EventRecorder;
use super::informer_set::InformerSet;

#[derive(Clone)]
pub struct Context {
    pub client: Client,
    pub informers: Arc<InformerSet>,
    pub recorder: EventRecorder,
}
