//! The probe: what the gateway asks the stub on every new upstream
//! connection, before serving any request.
//!
//! Pipelined in one burst: `qSupported` (the stub's features and packet
//! size; nothing is assumed, so QEMU 7.2 and 10.x are told apart by what
//! they say), target.xml (and then every document it includes, followed
//! recursively), `?` (the current stop state) and `vCont?`. Reading
//! target.xml first matters: QEMU 7.2 answers `g` with a legacy 168-byte
//! layout on a connection that has not read it. If the stub offers
//! `QStartNoAckMode`, the gateway turns acks off upstream too.
//!
//! The connection pauses QEMU's VM, so the target is halted when the probe
//! ends; the gateway then reads `g` ahead of the first client.

use std::collections::{BTreeMap, BTreeSet};

use virserver_rsp::packets::{Features, XferRead, XferReply};
use virserver_rsp::{Command, StopReply};

use super::cache::ReadKey;
use super::reads::Finish;
use super::upstream::{Expect, Purpose};
use super::{Link, Mux, Run, Selection, StubInfo};
use crate::target_description::TargetDescription;

/// The features the gateway offers the stub (what GDB 13 offers, less the
/// process events a system emulator has no use for).
const GATEWAY_FEATURES: &[u8] = b"qSupported:multiprocess+;swbreak+;hwbreak+;vContSupported+";

/// The packet size assumed until the stub says (QEMU's).
const DEFAULT_STUB_PACKET_SIZE: usize = 0x1000;

/// The probe's progress.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    outstanding: usize,
    partial: BTreeMap<String, Vec<u8>>,
    requested: BTreeSet<String>,
}

/// Which probe request a reply answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ProbeStep {
    Supported,
    Document { annex: String, offset: u64 },
    StopReason,
    VContQuery,
    NoAck,
}

impl Mux {
    /// The connection asked for is up: probe it.
    pub(crate) fn upstream_connected(&mut self) {
        if !matches!(self.link, Link::Connecting) {
            return;
        }
        tracing::info!("connected to the stub; probing");
        self.upstream_decoder.reset();
        self.in_flight.clear();
        self.run = Run::Halted;
        self.upstream_selection = Selection::default();
        self.stub = StubInfo {
            packet_size: DEFAULT_STUB_PACKET_SIZE,
            ..StubInfo::default()
        };
        self.link = Link::Probing(Probe::default());
        // A VM that ran is paused by this connection, and QEMU says so with
        // an unsolicited T02 before any reply: the expectations below let
        // the upstream side tell it apart.
        self.probe_send(GATEWAY_FEATURES, Expect::Features, ProbeStep::Supported);
        self.request_document("target.xml", 0);
        self.probe_send(b"?", Expect::StopReply, ProbeStep::StopReason);
        self.probe_send(b"vCont?", Expect::VContList, ProbeStep::VContQuery);
    }

    fn probe_send(&mut self, payload: &[u8], expect: Expect, step: ProbeStep) {
        if let Link::Probing(probe) = &mut self.link {
            probe.outstanding += 1;
        }
        self.send_upstream(payload, expect, Purpose::Probe(step));
    }

    fn request_document(&mut self, annex: &str, offset: u64) {
        if let Link::Probing(probe) = &mut self.link {
            probe.requested.insert(annex.to_owned());
        }
        let length = self.stub.packet_size.saturating_sub(5).max(64) as u64;
        let read = XferRead {
            object: "features".into(),
            annex: annex.to_owned(),
            offset,
            length,
        };
        let payload = Command::XferRead(read).to_payload();
        let step = ProbeStep::Document {
            annex: annex.to_owned(),
            offset,
        };
        self.probe_send(&payload, Expect::Xfer, step);
    }

    /// A reply to one of the probe's requests.
    pub(crate) fn probe_reply(&mut self, step: ProbeStep, payload: &[u8]) {
        let Link::Probing(probe) = &mut self.link else {
            return;
        };
        probe.outstanding = probe.outstanding.saturating_sub(1);
        match step {
            ProbeStep::Supported => {
                self.stub.features = Features::parse(payload).unwrap_or_default();
                self.stub.packet_size = self
                    .stub
                    .features
                    .packet_size()
                    .and_then(|size| usize::try_from(size).ok())
                    .unwrap_or(DEFAULT_STUB_PACKET_SIZE)
                    .max(256);
                tracing::info!(features = %String::from_utf8_lossy(payload), "stub features");
                if self.stub.features.is_supported("QStartNoAckMode") {
                    self.probe_send(b"QStartNoAckMode", Expect::Status, ProbeStep::NoAck);
                }
            }
            ProbeStep::Document { annex, offset } => self.document_piece(annex, offset, payload),
            ProbeStep::StopReason => {
                if let Ok(reply) = StopReply::parse(payload)
                    && reply.is_stop()
                {
                    self.last_stop = Some(payload.to_vec());
                    let thread = reply.thread();
                    self.upstream_selection = Selection {
                        general: thread,
                        resume: thread,
                    };
                }
            }
            ProbeStep::VContQuery => {
                if payload.starts_with(b"vCont") {
                    self.stub.vcont = Some(payload.to_vec());
                }
            }
            ProbeStep::NoAck => {}
        }
        if matches!(&self.link, Link::Probing(probe) if probe.outstanding == 0) {
            self.probe_finished();
        }
    }

    fn document_piece(&mut self, annex: String, offset: u64, payload: &[u8]) {
        let Ok(reply) = XferReply::parse(payload) else {
            tracing::debug!(%annex, reply = %String::from_utf8_lossy(payload), "no such document");
            return;
        };
        let Link::Probing(probe) = &mut self.link else {
            return;
        };
        let buffer = probe.partial.entry(annex.clone()).or_default();
        buffer.extend_from_slice(reply.data());
        if !reply.is_last() && !reply.data().is_empty() {
            let next = offset + reply.data().len() as u64;
            self.request_document(&annex, next);
            return;
        }
        let document = probe.partial.remove(&annex).unwrap_or_default();
        let includes: Vec<String> = TargetDescription::includes(&document)
            .into_iter()
            .filter(|include| !probe.requested.contains(include))
            .collect();
        self.stub.documents.insert(annex, document);
        for include in includes {
            self.request_document(&include, 0);
        }
    }

    fn probe_finished(&mut self) {
        let documents = &self.stub.documents;
        self.stub.description = documents.get("target.xml").map(|root| {
            TargetDescription::parse(root, &|name: &str| documents.get(name).map(Vec::as_slice))
        });
        tracing::info!(
            registers = self
                .stub
                .description
                .as_ref()
                .map_or(0, |d| d.registers.len()),
            "stub probed"
        );
        self.link = Link::Ready;
        if self.maybe_teardown(None) {
            return;
        }
        if self.config.cache && self.stub.description.is_some() {
            let owner = self.gateway_owner();
            let generation = self.cache.generation();
            let thread = self.upstream_selection.general;
            self.start_job(
                owner,
                vec![ReadKey::Registers { thread }],
                Finish::StopReadAhead {
                    event: None,
                    generation,
                },
            );
        }
        self.pump_all();
    }
}
