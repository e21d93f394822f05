//! Property tests for the wire codec (style.md S12, S13, S22).
//!
//! 1. Random valid messages, built as an owned option tree and encoded with `Writer`, parse
//!    with `Message::parse` into the same tree and re-encode with `Message::encode` byte for
//!    byte; a sequence of them framed with `build::framed` and fed to `FrameDecoder` in
//!    random-size chunks comes back unchanged and in order.
//! 2. Random and mutated bytes never panic the frame decoder (which must also agree with a
//!    simple reference model of RFC 5460 §5.1 framing), `Message::parse` or `parse_query`;
//!    whenever `Message::parse` accepts bytes, re-encoding gives exactly those bytes.
//! 3. Random valid queries written with `build::write_query` validate with `parse_query`
//!    into the fields they were built from.

use core::net::Ipv6Addr;

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::Union;

use lqd::wire::build::{framed, write_query, LqQueryOut, QueryMessage, QueryOut};
use lqd::wire::{
    parse_query, EncodeError, Error, FrameDecoder, Message, MessageType, Opt, OptionCode,
    OptionList, QueryKey, QueryKind, RelayMessage, RelayMsgBody, Writer, Xid,
};

const SERVER_DUID: [u8; 10] = [0x00, 0x03, 0x00, 0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55];

/// Message types allowed on a leasequery connection (S-25).
const TCP_MESSAGE_TYPES: [u8; 7] = [7, 14, 15, 16, 17, 22, 23];

// ---------------------------------------------------------------------------------------
// The owned option tree
// ---------------------------------------------------------------------------------------

/// A relay message header and options (RFC 8415 §9).
#[derive(Clone, Debug, PartialEq, Eq)]
struct Relay {
    msg_type: u8,
    hop_count: u8,
    link: [u8; 16],
    peer: [u8; 16],
    options: Vec<Node>,
}

/// The data of OPTION_RELAY_MSG.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RelayBody {
    Relay(Relay),
    /// Never starts with 12 or 13 (those octets make it a relay message).
    Opaque(Vec<u8>),
}

/// One option, owned.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    ClientId(Vec<u8>),
    ServerId(Vec<u8>),
    IaAddr {
        address: [u8; 16],
        preferred: u32,
        valid: u32,
        options: Vec<Node>,
    },
    Oro(Vec<u16>),
    RelayMsg(RelayBody),
    Status {
        code: u16,
        message: Vec<u8>,
    },
    InterfaceId(Vec<u8>),
    IaPrefix {
        preferred: u32,
        valid: u32,
        prefix_len: u8,
        prefix: [u8; 16],
        options: Vec<Node>,
    },
    RemoteId {
        enterprise: u32,
        id: Vec<u8>,
    },
    LqQuery {
        query_type: u8,
        link: [u8; 16],
        options: Vec<Node>,
    },
    ClientData(Vec<Node>),
    CltTime(u32),
    LqRelayData {
        peer: [u8; 16],
        relay: Relay,
    },
    LqClientLink(Vec<[u8; 16]>),
    RelayId(Vec<u8>),
    LqBaseTime(u32),
    LqStartTime(u32),
    LqEndTime(u32),
    Unknown {
        code: u16,
        data: Vec<u8>,
    },
}

impl Node {
    const fn code(&self) -> u16 {
        match self {
            Self::ClientId(_) => 1,
            Self::ServerId(_) => 2,
            Self::IaAddr { .. } => 5,
            Self::Oro(_) => 6,
            Self::RelayMsg(_) => 9,
            Self::Status { .. } => 13,
            Self::InterfaceId(_) => 18,
            Self::IaPrefix { .. } => 26,
            Self::RemoteId { .. } => 37,
            Self::LqQuery { .. } => 44,
            Self::ClientData(_) => 45,
            Self::CltTime(_) => 46,
            Self::LqRelayData { .. } => 47,
            Self::LqClientLink(_) => 48,
            Self::RelayId(_) => 53,
            Self::LqBaseTime(_) => 100,
            Self::LqStartTime(_) => 101,
            Self::LqEndTime(_) => 102,
            Self::Unknown { code, .. } => *code,
        }
    }
}

/// A whole client/server message.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Msg {
    msg_type: u8,
    xid: u32,
    options: Vec<Node>,
}

/// Keep the first instance of every singleton code (RFC 8415 Table 4: all known codes but
/// IAADDR and IAPREFIX), so that the list is one the codec must accept.
fn dedup(nodes: Vec<Node>) -> Vec<Node> {
    let mut seen = Vec::new();
    nodes
        .into_iter()
        .filter(|n| {
            let code = n.code();
            if !OptionCode::from_code(code).is_singleton() {
                return true;
            }
            if seen.contains(&code) {
                return false;
            }
            seen.push(code);
            true
        })
        .collect()
}

// ---------------------------------------------------------------------------------------
// Encoding the tree with Writer
// ---------------------------------------------------------------------------------------

fn write_list(w: &mut Writer<'_>, nodes: &[Node]) -> Result<(), EncodeError> {
    nodes.iter().try_for_each(|n| write_node(w, n))
}

fn write_relay(w: &mut Writer<'_>, relay: &Relay) -> Result<(), EncodeError> {
    w.u8(relay.msg_type)?;
    w.u8(relay.hop_count)?;
    w.put(&relay.link)?;
    w.put(&relay.peer)?;
    write_list(w, &relay.options)
}

/// Options with nested structure: begin, fields, nested list, end (length back-patched).
fn write_nested(w: &mut Writer<'_>, node: &Node) -> Result<(), EncodeError> {
    let mark = w.begin(OptionCode::from_code(node.code()))?;
    match node {
        Node::IaAddr {
            address,
            preferred,
            valid,
            options,
        } => {
            w.put(address)?;
            w.u32(*preferred)?;
            w.u32(*valid)?;
            write_list(w, options)?;
        }
        Node::IaPrefix {
            preferred,
            valid,
            prefix_len,
            prefix,
            options,
        } => {
            w.u32(*preferred)?;
            w.u32(*valid)?;
            w.u8(*prefix_len)?;
            w.put(prefix)?;
            write_list(w, options)?;
        }
        Node::LqQuery {
            query_type,
            link,
            options,
        } => {
            w.u8(*query_type)?;
            w.put(link)?;
            write_list(w, options)?;
        }
        Node::ClientData(options) => write_list(w, options)?,
        Node::LqRelayData { peer, relay } => {
            w.put(peer)?;
            write_relay(w, relay)?;
        }
        Node::RelayMsg(RelayBody::Relay(relay)) => write_relay(w, relay)?,
        _ => unreachable!("not a nested option: {node:?}"),
    }
    w.end(mark)
}

fn write_node(w: &mut Writer<'_>, node: &Node) -> Result<(), EncodeError> {
    let code = OptionCode::from_code(node.code());
    match node {
        Node::ClientId(d) | Node::ServerId(d) | Node::RelayId(d) | Node::InterfaceId(d) => {
            w.option(code, d)
        }
        Node::RelayMsg(RelayBody::Opaque(d)) | Node::Unknown { data: d, .. } => w.option(code, d),
        Node::Oro(codes) => {
            let bytes: Vec<u8> = codes.iter().flat_map(|c| c.to_be_bytes()).collect();
            w.option(code, &bytes)
        }
        Node::Status {
            code: status,
            message,
        } => {
            let mark = w.begin(code)?;
            w.u16(*status)?;
            w.put(message)?;
            w.end(mark)
        }
        Node::RemoteId { enterprise, id } => {
            let mark = w.begin(code)?;
            w.u32(*enterprise)?;
            w.put(id)?;
            w.end(mark)
        }
        Node::LqClientLink(links) => w.option(code, &links.concat()),
        Node::CltTime(v) | Node::LqBaseTime(v) | Node::LqStartTime(v) | Node::LqEndTime(v) => {
            w.option_u32(code, *v)
        }
        Node::IaAddr { .. }
        | Node::IaPrefix { .. }
        | Node::LqQuery { .. }
        | Node::ClientData(_)
        | Node::LqRelayData { .. }
        | Node::RelayMsg(RelayBody::Relay(_)) => write_nested(w, node),
    }
}

fn write_msg(w: &mut Writer<'_>, msg: &Msg) -> Result<(), EncodeError> {
    w.u8(msg.msg_type)?;
    w.put(&msg.xid.to_be_bytes()[1..])?;
    write_list(w, &msg.options)
}

/// The unframed encoding of `msg`.
fn encode(msg: &Msg) -> Vec<u8> {
    let mut buf = vec![0u8; usize::from(u16::MAX)];
    let mut w = Writer::new(&mut buf);
    write_msg(&mut w, msg).expect("generated messages fit 65535 octets");
    w.written().to_vec()
}

/// `Message::encode` of a parsed message.
fn reencode(message: &Message<'_>, len: usize) -> Vec<u8> {
    let mut buf = vec![0u8; len];
    let mut w = Writer::new(&mut buf);
    message
        .encode(&mut w)
        .expect("a parsed message fits its own length");
    w.written().to_vec()
}

// ---------------------------------------------------------------------------------------
// Converting the parsed views back into the owned tree
// ---------------------------------------------------------------------------------------

fn from_list(list: OptionList<'_>) -> Vec<Node> {
    list.iter().map(from_opt).collect()
}

fn from_relay(m: &RelayMessage<'_>) -> Relay {
    Relay {
        msg_type: m.msg_type.code(),
        hop_count: m.hop_count,
        link: m.link_address.octets(),
        peer: m.peer_address.octets(),
        options: from_list(m.options),
    }
}

fn from_opt(opt: Opt<'_>) -> Node {
    match opt {
        Opt::ClientId(d) => Node::ClientId(d.bytes().to_vec()),
        Opt::ServerId(d) => Node::ServerId(d.bytes().to_vec()),
        Opt::RelayId(d) => Node::RelayId(d.bytes().to_vec()),
        Opt::IaAddr(a) => Node::IaAddr {
            address: a.address.octets(),
            preferred: a.preferred,
            valid: a.valid,
            options: from_list(a.options),
        },
        Opt::IaPrefix(p) => Node::IaPrefix {
            preferred: p.preferred,
            valid: p.valid,
            prefix_len: p.prefix_len,
            prefix: p.prefix.octets(),
            options: from_list(p.options),
        },
        Opt::Oro(o) => Node::Oro(o.codes().collect()),
        Opt::RelayMsg(RelayMsgBody::Relay(m)) => Node::RelayMsg(RelayBody::Relay(from_relay(&m))),
        Opt::RelayMsg(RelayMsgBody::Opaque(d)) => Node::RelayMsg(RelayBody::Opaque(d.to_vec())),
        Opt::Status(s) => Node::Status {
            code: s.code.code(),
            message: s.message.to_vec(),
        },
        Opt::InterfaceId(d) => Node::InterfaceId(d.to_vec()),
        Opt::RemoteId(r) => Node::RemoteId {
            enterprise: r.enterprise(),
            id: r.id().to_vec(),
        },
        Opt::LqQuery(q) => Node::LqQuery {
            query_type: q.query_type.code(),
            link: q.link_address.octets(),
            options: from_list(q.options),
        },
        Opt::ClientData(list) => Node::ClientData(from_list(list)),
        Opt::CltTime(v) => Node::CltTime(v),
        Opt::LqRelayData(d) => Node::LqRelayData {
            peer: d.peer_address.octets(),
            relay: from_relay(&d.relay),
        },
        Opt::LqClientLink(d) => Node::LqClientLink(
            d.chunks_exact(16)
                .map(|c| c.try_into().expect("16-octet chunk"))
                .collect(),
        ),
        Opt::LqBaseTime(v) => Node::LqBaseTime(v),
        Opt::LqStartTime(v) => Node::LqStartTime(v),
        Opt::LqEndTime(v) => Node::LqEndTime(v),
        Opt::Unknown { code, data } => Node::Unknown {
            code,
            data: data.to_vec(),
        },
    }
}

fn from_message(m: &Message<'_>) -> Msg {
    Msg {
        msg_type: m.msg_type.code(),
        xid: m.xid.value(),
        options: from_list(m.options),
    }
}

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

fn duid() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 3..=130)
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn unknown_code() -> impl Strategy<Value = u16> {
    any::<u16>().prop_filter("an option code the codec does not know", |&c| {
        matches!(OptionCode::from_code(c), OptionCode::Unknown(_))
    })
}

fn unknown() -> BoxedStrategy<Node> {
    (unknown_code(), bytes(24))
        .prop_map(|(code, data)| Node::Unknown { code, data })
        .boxed()
}

fn status() -> BoxedStrategy<Node> {
    (any::<u16>(), bytes(32))
        .prop_map(|(code, message)| Node::Status { code, message })
        .boxed()
}

fn remote_id() -> BoxedStrategy<Node> {
    (any::<u32>(), vec(any::<u8>(), 1..=24))
        .prop_map(|(enterprise, id)| Node::RemoteId { enterprise, id })
        .boxed()
}

/// Options without nested lists.
fn leaf() -> BoxedStrategy<Node> {
    Union::new([
        duid().prop_map(Node::ClientId).boxed(),
        duid().prop_map(Node::ServerId).boxed(),
        duid().prop_map(Node::RelayId).boxed(),
        vec(any::<u16>(), 0..8).prop_map(Node::Oro).boxed(),
        status(),
        remote_id(),
        bytes(16).prop_map(Node::InterfaceId).boxed(),
        any::<u32>().prop_map(Node::CltTime).boxed(),
        vec(any::<[u8; 16]>(), 0..4)
            .prop_map(Node::LqClientLink)
            .boxed(),
        any::<u32>().prop_map(Node::LqBaseTime).boxed(),
        any::<u32>().prop_map(Node::LqStartTime).boxed(),
        any::<u32>().prop_map(Node::LqEndTime).boxed(),
        unknown(),
    ])
    .boxed()
}

/// Options a relay agent puts in a RELAY-FORW (RFC 8415 §9, RFC 4649, RFC 5460 §5.4.1).
fn relay_option() -> BoxedStrategy<Node> {
    Union::new([
        bytes(16).prop_map(Node::InterfaceId).boxed(),
        remote_id(),
        duid().prop_map(Node::RelayId).boxed(),
        unknown(),
    ])
    .boxed()
}

/// A RELAY_MSG body the codec keeps opaque: empty, or not starting with 12 or 13.
fn opaque_body() -> impl Strategy<Value = Vec<u8>> {
    bytes(40).prop_filter("starts like a relay message", |b| {
        !matches!(b.first(), Some(12 | 13))
    })
}

/// A relay message of type `msg_type` whose options get `inner` at a random position.
fn relay_with(
    msg_type: impl Strategy<Value = u8>,
    inner: impl Strategy<Value = Option<RelayBody>>,
) -> impl Strategy<Value = Relay> {
    (
        msg_type,
        any::<u8>(),
        any::<[u8; 16]>(),
        any::<[u8; 16]>(),
        vec(relay_option(), 0..4),
        inner,
        any::<prop::sample::Index>(),
    )
        .prop_map(|(msg_type, hop_count, link, peer, opts, inner, at)| {
            let mut options = dedup(opts);
            if let Some(body) = inner {
                options.insert(at.index(options.len() + 1), Node::RelayMsg(body));
            }
            Relay {
                msg_type,
                hop_count,
                link,
                peer,
                options,
            }
        })
}

/// A RELAY-FORW (type 12, as LQ_RELAY_DATA holds) nesting up to three more relay
/// messages through RELAY_MSG; the innermost may hold an opaque RELAY_MSG.
fn relay_forw() -> impl Strategy<Value = Relay> {
    let innermost = option::of(opaque_body().prop_map(RelayBody::Opaque));
    let chain = relay_with(select(vec![12u8, 13]), innermost).prop_recursive(3, 4, 1, |inner| {
        relay_with(
            select(vec![12u8, 13]),
            option::of(inner.prop_map(RelayBody::Relay)),
        )
    });
    relay_with(Just(12u8), option::of(chain.prop_map(RelayBody::Relay)))
}

/// Any option, nested lists included (at most three levels of LQ_QUERY / CLIENT_DATA,
/// plus IAADDR/IAPREFIX sub-options and relay chains: well inside NESTING_MAX).
fn node() -> BoxedStrategy<Node> {
    leaf()
        .prop_recursive(3, 24, 4, |inner| {
            let list = vec(inner, 0..5).prop_map(dedup);
            let sub = option::of(status()).prop_map(|s| s.into_iter().collect::<Vec<_>>());
            prop_oneof![
                (any::<[u8; 16]>(), any::<u32>(), any::<u32>(), sub.clone()).prop_map(
                    |(address, preferred, valid, options)| Node::IaAddr {
                        address,
                        preferred,
                        valid,
                        options,
                    }
                ),
                (any::<(u32, u32)>(), 0u8..=128, any::<[u8; 16]>(), sub).prop_map(
                    |((preferred, valid), prefix_len, prefix, options)| Node::IaPrefix {
                        preferred,
                        valid,
                        prefix_len,
                        prefix,
                        options,
                    }
                ),
                (1u8..=5, any::<[u8; 16]>(), list.clone()).prop_map(
                    |(query_type, link, options)| Node::LqQuery {
                        query_type,
                        link,
                        options,
                    }
                ),
                list.prop_map(Node::ClientData),
                (any::<[u8; 16]>(), relay_forw())
                    .prop_map(|(peer, relay)| Node::LqRelayData { peer, relay }),
            ]
        })
        .boxed()
}

fn msg() -> impl Strategy<Value = Msg> {
    (
        select(TCP_MESSAGE_TYPES.to_vec()),
        0u32..=Xid::MAX,
        vec(node(), 0..6).prop_map(dedup),
    )
        .prop_map(|(msg_type, xid, options)| Msg {
            msg_type,
            xid,
            options,
        })
}

// ---------------------------------------------------------------------------------------
// Helpers for the byte-level properties
// ---------------------------------------------------------------------------------------

/// Flip, insert or delete a few octets.
#[derive(Clone, Copy, Debug)]
enum Edit {
    Set(prop::sample::Index, u8),
    Insert(prop::sample::Index, u8),
    Delete(prop::sample::Index),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Set(i, b)),
        (any::<prop::sample::Index>(), any::<u8>()).prop_map(|(i, b)| Edit::Insert(i, b)),
        any::<prop::sample::Index>().prop_map(Edit::Delete),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for e in edits {
        match *e {
            Edit::Set(i, b) if !bytes.is_empty() => {
                let at = i.index(bytes.len());
                bytes[at] = b;
            }
            Edit::Insert(i, b) => bytes.insert(i.index(bytes.len() + 1), b),
            Edit::Delete(i) if !bytes.is_empty() => {
                bytes.remove(i.index(bytes.len()));
            }
            Edit::Set(..) | Edit::Delete(_) => {}
        }
    }
    bytes
}

/// Whatever `bytes` are: no panic; an accepted message re-encodes to exactly `bytes`;
/// `parse_query` and the error mapping do not panic either.
fn check_any_message(bytes: &[u8]) -> Result<(), TestCaseError> {
    match Message::parse(bytes) {
        Ok(m) => {
            prop_assert_eq!(reencode(&m, bytes.len()), bytes);
            let _ = m.to_string();
            match parse_query(&m, &SERVER_DUID) {
                Ok(q) => {
                    prop_assert!(matches!(
                        m.msg_type,
                        MessageType::Leasequery | MessageType::ActiveLeasequery
                    ));
                    prop_assert!(q.kind == QueryKind::Active || q.filter.is_some());
                    prop_assert!(!(q.kind == QueryKind::Active && q.end_time.is_some()));
                }
                Err(e) => {
                    let _ = (e.disposition(), e.reason(), e.to_string());
                }
            }
        }
        Err(e) => {
            let _ = (e.disposition(), e.reason(), e.to_string());
        }
    }
    Ok(())
}

/// What the decoder must yield for `stream` fed completely: the frames, then either the
/// framing error or "need more" (RFC 5460 §5.1, protocol.md §2.1).
fn model_frames(stream: &[u8], max: u16) -> (Vec<Vec<u8>>, Option<Error>) {
    let mut frames = Vec::new();
    let mut rest = stream;
    while let [hi, lo, body @ ..] = rest {
        let size = u16::from_be_bytes([*hi, *lo]);
        if size < 4 {
            return (frames, Some(Error::FrameTooShort { size }));
        }
        if size > max {
            return (frames, Some(Error::FrameTooLarge { size, max }));
        }
        let Some((frame, after)) = body.split_at_checked(usize::from(size)) else {
            break;
        };
        frames.push(frame.to_vec());
        rest = after;
    }
    (frames, None)
}

/// Feed `stream` to `decoder` in chunks of the sizes in `chunks` (cycled), draining frames
/// after every chunk; returns the frames and the error that ended the stream, if any.
fn feed(
    decoder: &mut FrameDecoder,
    stream: &[u8],
    chunks: &[usize],
) -> (Vec<Vec<u8>>, Option<Error>) {
    let mut frames = Vec::new();
    let mut offset = 0;
    let mut sizes = chunks.iter().cycle();
    loop {
        loop {
            match decoder.next_frame() {
                Ok(Some(frame)) => frames.push(frame.to_vec()),
                Ok(None) => break,
                Err(e) => return (frames, Some(e)),
            }
        }
        if offset == stream.len() {
            return (frames, None);
        }
        let end = (offset + sizes.next().copied().unwrap_or(1)).min(stream.len());
        let taken = decoder.extend(&stream[offset..end]);
        assert!(taken > 0, "a drained decoder always has spare room");
        offset += taken;
    }
}

/// Random streams, sometimes made of plausible small size prefixes so that frames and
/// framing errors actually happen.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let segment = (0u16..80, bytes(80)).prop_map(|(size, body)| {
        let mut v = size.to_be_bytes().to_vec();
        v.extend(body);
        v
    });
    prop_oneof![
        bytes(600),
        vec(segment, 0..8).prop_map(|s| s.concat()),
        vec(msg(), 1..4).prop_map(|ms| ms.iter().map(framed_bytes).collect::<Vec<_>>().concat()),
    ]
}

fn framed_bytes(msg: &Msg) -> Vec<u8> {
    let mut buf = vec![0u8; usize::from(u16::MAX) + 2];
    let n = framed(&mut buf, |w| write_msg(w, msg)).expect("generated messages fit a frame");
    buf.truncate(n);
    buf
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Writer → Message::parse → owned tree equals the generated one; Message::encode gives
    /// the same bytes.
    #[test]
    fn valid_messages_round_trip(m in msg()) {
        let bytes = encode(&m);
        let parsed = Message::parse(&bytes);
        prop_assert!(parsed.is_ok(), "{:?} for {:02x?}", parsed, bytes);
        let parsed = parsed.unwrap();
        prop_assert_eq!(from_message(&parsed), m);
        prop_assert_eq!(reencode(&parsed, bytes.len()), bytes);
    }

    /// Several messages framed back to back, fed in random chunks, come out unchanged.
    #[test]
    fn framed_sequences_round_trip(
        ms in vec(msg(), 1..5),
        chunks in vec(1usize..=300, 1..8),
        slack in any::<prop::sample::Index>(),
    ) {
        let stream: Vec<u8> = ms.iter().map(framed_bytes).collect::<Vec<_>>().concat();
        let largest = ms.iter().map(|m| encode(m).len()).max().unwrap_or(4);
        let largest = u16::try_from(largest).unwrap().max(4);
        let max = largest + u16::try_from(slack.index(usize::from(u16::MAX - largest) + 1))
            .unwrap();
        let mut decoder = FrameDecoder::new(max);
        let (frames, error) = feed(&mut decoder, &stream, &chunks);
        prop_assert_eq!(error, None);
        prop_assert_eq!(decoder.buffered(), 0);
        prop_assert_eq!(frames.len(), ms.len());
        for (frame, m) in frames.iter().zip(&ms) {
            prop_assert_eq!(frame, &encode(m));
            let parsed = Message::parse(frame).expect("a framed valid message parses");
            prop_assert_eq!(&from_message(&parsed), m);
        }
    }

    /// Any stream, any maximum, any chunking: no panic, and exactly the frames and the
    /// error of the reference model; after an error the decoder stays failed.
    #[test]
    fn frame_decoder_matches_the_model(
        stream in stream(),
        max in prop_oneof![4u16..=100, 4u16..=u16::MAX],
        chunks in vec(1usize..=700, 1..8),
    ) {
        let mut decoder = FrameDecoder::new(max);
        let (frames, error) = feed(&mut decoder, &stream, &chunks);
        let (want_frames, want_error) = model_frames(&stream, max);
        prop_assert_eq!(&frames, &want_frames);
        prop_assert_eq!(error, want_error);
        for frame in &frames {
            prop_assert!(frame.len() >= 4 && frame.len() <= usize::from(max));
            check_any_message(frame)?;
        }
        if let Some(e) = error {
            prop_assert_eq!(decoder.next_frame(), Err(e));
            decoder.extend(&[0, 4, 23, 0, 0, 0]);
            prop_assert_eq!(decoder.next_frame(), Err(e));
        }
    }

    /// Random bytes: no panic anywhere; accepted bytes re-encode to themselves.
    #[test]
    fn random_bytes_never_panic(
        bytes in bytes(300),
        msg_type in any::<u8>(),
        short in any::<bool>(),
    ) {
        check_any_message(&bytes)?;
        // The same bytes behind a plausible header, and with the header alone.
        let mut with_header = vec![msg_type, 0, 0, 1];
        if !short {
            with_header.extend(&bytes);
        }
        check_any_message(&with_header)?;
    }

    /// Valid messages with a few octets flipped, inserted or deleted: no panic; whatever
    /// still parses re-encodes to exactly the mutated bytes.
    #[test]
    fn mutated_messages_never_panic(m in msg(), edits in vec(edit(), 1..4)) {
        let bytes = apply(encode(&m), &edits);
        check_any_message(&bytes)?;
    }
}

// ---------------------------------------------------------------------------------------
// Valid queries through build::write_query and parse_query
// ---------------------------------------------------------------------------------------

fn query_out() -> impl Strategy<Value = (u8, [u8; 16], Vec<u8>)> {
    prop_oneof![
        any::<[u8; 16]>().prop_map(|a| (1u8, a, Vec::new())),
        duid().prop_map(|d| (2u8, [0; 16], d)),
        duid().prop_map(|d| (3u8, [0; 16], d)),
        Just((4u8, [0; 16], Vec::new())),
        vec(any::<u8>(), 5..=40).prop_map(|r| (5u8, [0; 16], r)),
    ]
}

fn key_matches(key: QueryKey<'_>, query_type: u8, address: [u8; 16], data: &[u8]) -> bool {
    match key {
        QueryKey::Address(a) => query_type == 1 && a == Ipv6Addr::from(address),
        QueryKey::ClientId(d) => query_type == 2 && d.bytes() == data,
        QueryKey::RelayId(d) => query_type == 3 && d.bytes() == data,
        QueryKey::LinkAddress => query_type == 4,
        QueryKey::RemoteId(r) => query_type == 5 && r.bytes() == data,
    }
}

/// One random query: kind, requestor DUID, optional LQ_QUERY, ORO codes, times.
type QueryCase = (
    bool,
    Vec<u8>,
    Option<(u8, [u8; 16], Vec<u8>)>,
    [u8; 16],
    Vec<u16>,
    Vec<u16>,
    Option<u32>,
    Option<u32>,
);

fn query_case() -> impl Strategy<Value = QueryCase> {
    (
        any::<bool>(),
        duid(),
        option::of(query_out()),
        any::<[u8; 16]>(),
        vec(any::<u16>(), 0..4),
        vec(any::<u16>(), 0..4),
        option::of(any::<u32>()),
        option::of(any::<u32>()),
    )
}

/// The unframed LEASEQUERY / ACTIVELEASEQUERY that `case` describes, after the rules a
/// requestor follows: a Bulk query always has LQ_QUERY (S-23), only a Bulk query has
/// END_TIME (S-29). Returns the bytes and the case as normalised.
fn built_query(case: QueryCase) -> (Vec<u8>, QueryCase) {
    let (active, requestor, lq, link, oro, query_oro, start, end) = case;
    let lq = if active {
        lq
    } else {
        lq.or(Some((4, [0; 16], Vec::new())))
    };
    let end = if active { None } else { end };
    let top_codes: Vec<OptionCode> = oro.iter().copied().map(OptionCode::from_code).collect();
    let query_codes: Vec<OptionCode> = query_oro
        .iter()
        .copied()
        .map(OptionCode::from_code)
        .collect();
    let lq_out = lq.as_ref().map(|(t, a, data)| LqQueryOut {
        query: match t {
            1 => QueryOut::Address(Ipv6Addr::from(*a)),
            2 => QueryOut::ClientId(data),
            3 => QueryOut::RelayId(data),
            4 => QueryOut::LinkAddress,
            _ => QueryOut::RemoteId(data),
        },
        link_address: Ipv6Addr::from(link),
        oro: &query_codes,
    });
    let msg_type = if active {
        MessageType::ActiveLeasequery
    } else {
        MessageType::Leasequery
    };
    let query = QueryMessage {
        msg_type,
        xid: Xid::new(QUERY_XID).unwrap(),
        client_id: &requestor,
        lq_query: lq_out,
        oro: &top_codes,
        start_time: start,
        end_time: end,
    };
    let mut buf = vec![0u8; 2048];
    let mut w = Writer::new(&mut buf);
    write_query(&mut w, &query).expect("a query fits 2048 octets");
    let bytes = w.written().to_vec();
    (
        bytes,
        (active, requestor, lq, link, oro, query_oro, start, end),
    )
}

const QUERY_XID: u32 = 0x00ab_cdef;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// A query built by `build::write_query` validates into exactly what it was built from
    /// (R-2..R-4, S-29: END_TIME only in Bulk; S-23: LQ_QUERY mandatory in Bulk).
    #[test]
    fn built_queries_validate(case in query_case()) {
        let (bytes, case) = built_query(case);
        let (active, requestor, lq, link, oro, query_oro, start, end) = case;
        let m = Message::parse(&bytes).expect("built query parses");
        let q = parse_query(&m, &SERVER_DUID).expect("built query validates");
        prop_assert_eq!(q.kind, if active { QueryKind::Active } else { QueryKind::Bulk });
        prop_assert_eq!(q.xid.value(), QUERY_XID);
        prop_assert_eq!(q.requestor.bytes(), &requestor[..]);
        prop_assert_eq!((q.start_time, q.end_time), (start, end));
        prop_assert_eq!(q.oro.map(|o| o.codes().collect::<Vec<_>>()).unwrap_or_default(), oro);
        match (q.filter, lq) {
            (None, None) => {}
            (Some(f), Some((t, a, data))) => {
                prop_assert!(key_matches(f.key, t, a, &data), "{:?}", f.key);
                prop_assert_eq!(f.link_address, Ipv6Addr::from(link));
                let codes = f.oro.map(|o| o.codes().collect::<Vec<_>>()).unwrap_or_default();
                prop_assert_eq!(codes, query_oro);
            }
            (f, lq) => prop_assert!(false, "filter {:?} for {:?}", f, lq),
        }
        prop_assert_eq!(reencode(&m, bytes.len()), bytes);
    }

    /// Built queries with a few octets changed: `parse_query` never panics, and whatever
    /// still parses re-encodes to exactly the mutated bytes.
    #[test]
    fn mutated_queries_never_panic(case in query_case(), edits in vec(edit(), 1..4)) {
        let (bytes, _) = built_query(case);
        check_any_message(&apply(bytes, &edits))?;
    }
}
