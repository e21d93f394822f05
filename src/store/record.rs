//! The change-log record format.
//!
//! ```text
//! offset size  field
//!  0     4    length: whole record, header included, a multiple of 8 (0 = end of segment)
//!  4     4    crc32c of octets 12..length
//!  8     4    state word (atomic, outside the checksum): bit 0 = superseded
//! 12     1    kind: 1 change, 2 checkpoint
//! 13     1    flags: bit 0 carried (a compaction copy), bit 1 no live lease
//! 14     2    lease count (change) / 0
//! 16     8    sequence, +1 per record of the shard
//! 24     4    change time, server absolute time
//! 28     4    link (Kea subnet id; 0 unknown)
//! 32     8    client key hash (DUID + link)
//! 40     8    relay-id hash, 0 when none
//! 48     8    remote-id hash, 0 when none
//! 56     …    payload
//! ```
//!
//! A change payload is the client's whole binding (so that recovery and the next change
//! start from it) followed by its CLIENT_DATA template, encoded at the change time, and the
//! offsets of its time fields (architecture.md, "Change record"):
//!
//! ```text
//! binding:   duid_len u8, duid, link_prefix_len u8 (255 = none), [prefix 16], cltt u32,
//!            lease_count u8, leases × {kind u8, prefix_len u8, state u8, address 16,
//!            preferred_until u32, valid_until u32, ended_at u32},
//!            relay u8 (0/1), [relay_id_len u8, relay_id, remote_id_len u8, remote_id,
//!            link_address 16, peer_address 16, relay_forw_len u16, relay_forw]
//! template:  clt_at u16, relay_at u16 (0 = none), lifetimes_at u16 × lease_count,
//!            template_len u16, CLIENT_DATA octets
//! ```
//! A checkpoint payload is `id u64, len u16, bytes` (the ingest position, opaque here).

use core::net::Ipv6Addr;

use xxhash_rust::xxh3::{xxh3_128, xxh3_64};

use super::model::{Binding, InlineBytes, Lease, LeaseState, Prefix, RelayInfo};
use crate::wire::client_data::{
    write_client_data, ClientDataInput, LeaseEntry, LeaseKind, RelayDataInput, TimeFields,
    LEASES_PER_CLIENT_MAX,
};
use crate::wire::{EncodeError, Error as WireError, Field, OptionCode, Reader, Writer};

/// Header size; the payload starts here.
pub const HEADER_LEN: usize = 56;
/// Records are padded to this alignment so that every header's atomic word is aligned.
pub const RECORD_ALIGN: usize = 8;
/// Longest checkpoint payload.
pub const CHECKPOINT_LEN_MAX: usize = 512;

/// Most octets one change record can take: header, the largest binding and the largest
/// CLIENT_DATA (both bounded by the model's inline buffers), rounded up.
pub const RECORD_LEN_MAX: usize = 16 * 1024;

/// Kind octet of a change record.
pub const KIND_CHANGE: u8 = 1;
/// Kind octet of a checkpoint record.
pub const KIND_CHECKPOINT: u8 = 2;
/// Flag: the record is a compaction copy, not a change.
pub const FLAG_CARRIED: u8 = 1;
/// Flag: the client has no live lease (all leases ended).
pub const FLAG_NO_LIVE_LEASE: u8 = 2;
/// State-word bit: a later record of the same client exists.
pub const STATE_SUPERSEDED: u32 = 1;

/// The fixed header fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Whole record length, padded.
    pub length: u32,
    /// Checksum of octets 12..length.
    pub crc: u32,
    /// [`KIND_CHANGE`] or [`KIND_CHECKPOINT`].
    pub kind: u8,
    /// [`FLAG_CARRIED`], [`FLAG_NO_LIVE_LEASE`].
    pub flags: u8,
    /// Sequence number within the shard.
    pub sequence: u64,
    /// Change time (server time).
    pub change_time: u32,
    /// Link of the client.
    pub link: u32,
    /// Hash of the client key.
    pub client_hash: u64,
    /// Hash of the relay-id, 0 when none.
    pub relay_hash: u64,
    /// Hash of the remote-id, 0 when none.
    pub remote_hash: u64,
}

impl Header {
    /// Decode the header fields (the state word is read separately, atomically).
    pub fn decode(bytes: &[u8; HEADER_LEN]) -> Self {
        let u32_at = |at: usize| {
            u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
        };
        let u64_at = |at: usize| u64::from(u32_at(at)) | u64::from(u32_at(at + 4)) << 32;
        Self {
            length: u32_at(0),
            crc: u32_at(4),
            kind: bytes[12],
            flags: bytes[13],
            sequence: u64_at(16),
            change_time: u32_at(24),
            link: u32_at(28),
            client_hash: u64_at(32),
            relay_hash: u64_at(40),
            remote_hash: u64_at(48),
        }
    }

    fn encode(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&self.length.to_le_bytes());
        out[4..8].copy_from_slice(&self.crc.to_le_bytes());
        out[8..12].copy_from_slice(&0u32.to_le_bytes());
        out[12] = self.kind;
        out[13] = self.flags;
        out[14..16].copy_from_slice(&0u16.to_le_bytes());
        out[16..24].copy_from_slice(&self.sequence.to_le_bytes());
        out[24..28].copy_from_slice(&self.change_time.to_le_bytes());
        out[28..32].copy_from_slice(&self.link.to_le_bytes());
        out[32..40].copy_from_slice(&self.client_hash.to_le_bytes());
        out[40..48].copy_from_slice(&self.relay_hash.to_le_bytes());
        out[48..56].copy_from_slice(&self.remote_hash.to_le_bytes());
    }
}

/// The checksum of a record: crc32c over everything after the state word.
pub fn checksum(record: &[u8]) -> u32 {
    crc32c::crc32c(&record[12..])
}

/// The 128-bit client key: DUID and link. Two clients with equal keys are the same client.
pub fn client_key(duid: &[u8], link: u32) -> u128 {
    let mut buf = [0u8; 134];
    buf[..4].copy_from_slice(&link.to_le_bytes());
    buf[4..4 + duid.len()].copy_from_slice(duid);
    xxh3_128(&buf[..4 + duid.len()])
}

/// A 64-bit hash of an index key (DUID, relay-id, remote-id); never 0 (0 means "none").
pub fn key_hash(bytes: &[u8]) -> u64 {
    xxh3_64(bytes).max(1)
}

/// Round `len` up to the record alignment.
pub const fn padded(len: usize) -> usize {
    len.div_ceil(RECORD_ALIGN) * RECORD_ALIGN
}

fn put_binding(w: &mut Writer<'_>, b: &Binding) -> Result<(), EncodeError> {
    w.u8(u8::try_from(b.duid.as_slice().len()).map_err(|_| EncodeError::TooLong)?)?;
    w.put(b.duid.as_slice())?;
    match b.link_prefix {
        Some(p) => {
            w.u8(p.len)?;
            w.put(&p.address.octets())?;
        }
        None => w.u8(255)?,
    }
    w.u32(b.cltt)?;
    w.u8(u8::try_from(b.leases().len()).map_err(|_| EncodeError::TooLong)?)?;
    for lease in b.leases() {
        let (kind, len, address) = match lease.kind {
            LeaseKind::Address(a) => (0, 128, a),
            LeaseKind::Prefix(p, len) => (1, len, p),
        };
        w.put(&[kind, len, lease.state.code()])?;
        w.put(&address.octets())?;
        w.u32(lease.preferred_until)?;
        w.u32(lease.valid_until)?;
        w.u32(lease.ended_at)?;
    }
    put_relay(w, &b.relay)
}

fn put_relay(w: &mut Writer<'_>, relay: &RelayInfo) -> Result<(), EncodeError> {
    if !relay.is_some() {
        return w.u8(0);
    }
    w.u8(1)?;
    for field in [relay.relay_id.as_slice(), relay.remote_id.as_slice()] {
        w.u8(u8::try_from(field.len()).map_err(|_| EncodeError::TooLong)?)?;
        w.put(field)?;
    }
    w.put(&relay.link_address.octets())?;
    w.put(&relay.peer_address.octets())?;
    let forw = relay.relay_forw.as_slice();
    w.u16(u16::try_from(forw.len()).map_err(|_| EncodeError::TooLong)?)?;
    w.put(forw)
}

/// Encode the CLIENT_DATA template of `b` at `now`, with relay data when held, into `w`,
/// preceded by its time-field table.
fn put_template(w: &mut Writer<'_>, b: &Binding, now: u32) -> Result<(), EncodeError> {
    let mut entries = [LeaseEntry {
        kind: LeaseKind::Address(Ipv6Addr::UNSPECIFIED),
        preferred: 0,
        valid: 0,
    }; LEASES_PER_CLIENT_MAX];
    let n = b.entries(now, true, &mut entries);
    let relay_data = (!b.relay.relay_forw.is_empty()).then(|| RelayDataInput {
        peer_address: b.relay.peer_address,
        relay_message: b.relay.relay_forw.as_slice(),
    });
    let input = ClientDataInput {
        client_id: b.duid.as_slice(),
        leases: &entries[..n],
        clt_time: b.clt_time(now),
        relay_data,
    };
    // The table precedes the template; encode the template after a placeholder table.
    let table_at = w.len();
    let table_len = 2 + 2 + 2 * n + 2;
    w.put(&[0u8; 2 + 2 + 2 * LEASES_PER_CLIENT_MAX + 2][..table_len])?;
    let template_at = w.len();
    let fields = write_client_data(w, &input)?;
    let template_len = w.len() - template_at;
    let relay_at = if relay_data.is_some() {
        relay_option_at(&w.written()[template_at..])
    } else {
        0
    };
    let table = &mut w.written_mut()[table_at..template_at];
    write_table(table, &fields, relay_at, template_len)
}

fn write_table(
    table: &mut [u8],
    fields: &TimeFields,
    relay_at: u16,
    template_len: usize,
) -> Result<(), EncodeError> {
    let mut t = Writer::new(table);
    t.u16(fields.clt_at)?;
    t.u16(relay_at)?;
    for &at in fields.lifetimes_at() {
        t.u16(at)?;
    }
    t.u16(u16::try_from(template_len).map_err(|_| EncodeError::TooLong)?)?;
    assert_eq!(t.len(), table.len());
    Ok(())
}

/// Offset of OPTION_LQ_RELAY_DATA inside an encoded CLIENT_DATA (it is always last).
fn relay_option_at(client_data: &[u8]) -> u16 {
    let mut at = 4;
    while at + 4 <= client_data.len() {
        let code = u16::from_be_bytes([client_data[at], client_data[at + 1]]);
        let len = usize::from(u16::from_be_bytes([
            client_data[at + 2],
            client_data[at + 3],
        ]));
        if code == OptionCode::LqRelayData.code() {
            return u16::try_from(at).unwrap_or(0);
        }
        at += 4 + len;
    }
    unreachable!("relay data was written into this CLIENT_DATA")
}

/// What to write as one change record.
#[derive(Clone, Copy, Debug)]
pub struct ChangeOut<'b> {
    /// Sequence number.
    pub sequence: u64,
    /// Change time.
    pub change_time: u32,
    /// True for a compaction copy.
    pub carried: bool,
    /// The client's whole binding after the change.
    pub binding: &'b Binding,
}

/// Encode a change record into `out`; returns its padded length.
pub fn encode_change(out: &mut [u8], change: &ChangeOut<'_>) -> Result<usize, EncodeError> {
    let b = change.binding;
    let mut w = Writer::new(out);
    w.put(&[0u8; HEADER_LEN])?;
    put_binding(&mut w, b)?;
    put_template(&mut w, b, change.change_time)?;
    let len = padded(w.len());
    while w.len() < len {
        w.u8(0)?;
    }
    let mut flags = if change.carried { FLAG_CARRIED } else { 0 };
    if !b.has_live_lease(change.change_time) {
        flags |= FLAG_NO_LIVE_LEASE;
    }
    let relay_id = b.relay.relay_id.as_slice();
    let remote_id = b.relay.remote_id.as_slice();
    let header = Header {
        length: u32::try_from(len).map_err(|_| EncodeError::TooLong)?,
        crc: 0,
        kind: KIND_CHANGE,
        flags,
        sequence: change.sequence,
        change_time: change.change_time,
        link: b.link,
        client_hash: low64(client_key(b.duid.as_slice(), b.link)),
        relay_hash: if relay_id.is_empty() {
            0
        } else {
            key_hash(relay_id)
        },
        remote_hash: if remote_id.is_empty() {
            0
        } else {
            key_hash(remote_id)
        },
    };
    seal(w.written_mut(), header);
    Ok(len)
}

/// Encode a checkpoint record into `out`; returns its padded length.
pub fn encode_checkpoint(
    out: &mut [u8],
    sequence: u64,
    change_time: u32,
    id: u64,
    bytes: &[u8],
) -> Result<usize, EncodeError> {
    if bytes.len() > CHECKPOINT_LEN_MAX {
        return Err(EncodeError::TooLong);
    }
    let mut w = Writer::new(out);
    w.put(&[0u8; HEADER_LEN])?;
    w.put(&id.to_be_bytes())?;
    w.u16(u16::try_from(bytes.len()).map_err(|_| EncodeError::TooLong)?)?;
    w.put(bytes)?;
    let len = padded(w.len());
    while w.len() < len {
        w.u8(0)?;
    }
    let header = Header {
        length: u32::try_from(len).map_err(|_| EncodeError::TooLong)?,
        crc: 0,
        kind: KIND_CHECKPOINT,
        flags: 0,
        sequence,
        change_time,
        link: 0,
        client_hash: 0,
        relay_hash: 0,
        remote_hash: 0,
    };
    seal(w.written_mut(), header);
    Ok(len)
}

/// Write `header` into `record` and compute its checksum.
pub fn seal(record: &mut [u8], header: Header) {
    header.encode(&mut record[..HEADER_LEN]);
    let crc = checksum(record);
    record[4..8].copy_from_slice(&crc.to_le_bytes());
}

/// The low 64 bits of a 128-bit key.
#[allow(clippy::cast_possible_truncation)] // Truncation is the point.
pub const fn low64(key: u128) -> u64 {
    key as u64
}

/// A decoded change payload: the binding and where its template lies.
#[derive(Clone, Debug)]
pub struct ChangeView<'a> {
    /// The client's binding as of this record.
    pub binding: Binding,
    /// The CLIENT_DATA template, encoded at the record's change time.
    pub template: &'a [u8],
    /// Offsets of the template's time fields.
    pub time_fields: TemplateFields,
}

/// The time-field table of a stored template.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TemplateFields {
    /// Offset of CLT_TIME's value.
    pub clt_at: u16,
    /// Offset of OPTION_LQ_RELAY_DATA, 0 when the template has none.
    pub relay_at: u16,
    lifetimes_at: [u16; LEASES_PER_CLIENT_MAX],
    lease_count: u8,
}

impl TemplateFields {
    /// Offsets of each lease's preferred lifetime (valid follows at +4).
    pub fn lifetimes_at(&self) -> &[u16] {
        &self.lifetimes_at[..usize::from(self.lease_count)]
    }
}

fn payload_error() -> WireError {
    WireError::BadValue {
        option: OptionCode::ClientData,
    }
}

fn read_binding(r: &mut Reader<'_>, link: u32) -> Result<Binding, WireError> {
    let f = Field::Option(OptionCode::ClientData);
    let duid_len = usize::from(r.u8(f)?);
    let mut b = Binding::new(r.take(duid_len, f)?, link).map_err(|_| payload_error())?;
    let prefix_len = r.u8(f)?;
    b.link_prefix = match prefix_len {
        255 => None,
        0..=128 => Some(Prefix {
            address: Ipv6Addr::from(r.array::<16>(f)?),
            len: prefix_len,
        }),
        _ => return Err(payload_error()),
    };
    b.cltt = r.u32(f)?;
    let count = r.u8(f)?;
    for _ in 0..count {
        let [kind, len, state] = r.array::<3>(f)?;
        let address = Ipv6Addr::from(r.array::<16>(f)?);
        let kind = match (kind, len) {
            (0, _) => LeaseKind::Address(address),
            (1, 0..=128) => LeaseKind::Prefix(address, len),
            _ => return Err(payload_error()),
        };
        let lease = Lease {
            kind,
            state: LeaseState::from_code(state),
            preferred_until: r.u32(f)?,
            valid_until: r.u32(f)?,
            ended_at: r.u32(f)?,
        };
        b.upsert(lease).map_err(|_| payload_error())?;
    }
    b.relay = read_relay(r)?;
    Ok(b)
}

fn read_relay(r: &mut Reader<'_>) -> Result<RelayInfo, WireError> {
    let f = Field::Option(OptionCode::LqRelayData);
    if r.u8(f)? == 0 {
        return Ok(RelayInfo::NONE);
    }
    let mut relay = RelayInfo::NONE;
    let len = usize::from(r.u8(f)?);
    relay.relay_id = InlineBytes::new(r.take(len, f)?).ok_or_else(payload_error)?;
    let len = usize::from(r.u8(f)?);
    relay.remote_id = InlineBytes::new(r.take(len, f)?).ok_or_else(payload_error)?;
    relay.link_address = Ipv6Addr::from(r.array::<16>(f)?);
    relay.peer_address = Ipv6Addr::from(r.array::<16>(f)?);
    let len = usize::from(r.u16(f)?);
    relay.relay_forw = InlineBytes::new(r.take(len, f)?).ok_or_else(payload_error)?;
    Ok(relay)
}

/// Decode a change payload (the octets after the header).
pub fn decode_change(payload: &[u8], link: u32) -> Result<ChangeView<'_>, WireError> {
    let mut r = Reader::new(payload);
    let binding = read_binding(&mut r, link)?;
    let count = u8::try_from(binding.leases().len()).map_err(|_| payload_error())?;
    let (template, time_fields) = read_template(&mut r, count)?;
    Ok(ChangeView {
        binding,
        template,
        time_fields,
    })
}

/// Only the CLIENT_DATA template of a change payload and its time fields, without building
/// the binding: what a live stream for all bindings needs (the fan-out path).
pub fn decode_template(payload: &[u8]) -> Result<(&[u8], TemplateFields), WireError> {
    let mut r = Reader::new(payload);
    let count = skip_binding(&mut r)?;
    read_template(&mut r, count)
}

/// Walk over the binding section; returns its lease count.
fn skip_binding(r: &mut Reader<'_>) -> Result<u8, WireError> {
    let f = Field::Option(OptionCode::ClientData);
    let duid_len = usize::from(r.u8(f)?);
    r.take(duid_len, f)?;
    if r.u8(f)? != 255 {
        r.take(16, f)?;
    }
    r.take(4, f)?; // cltt
    let count = r.u8(f)?;
    r.take(usize::from(count) * (3 + 16 + 12), f)?;
    if r.u8(f)? != 0 {
        for _ in 0..2 {
            let len = usize::from(r.u8(f)?);
            r.take(len, f)?;
        }
        r.take(32, f)?;
        let len = usize::from(r.u16(f)?);
        r.take(len, f)?;
    }
    Ok(count)
}

/// The time-field table and the template that follow the binding section.
fn read_template<'a>(
    r: &mut Reader<'a>,
    lease_count: u8,
) -> Result<(&'a [u8], TemplateFields), WireError> {
    let f = Field::Option(OptionCode::ClientData);
    let clt_at = r.u16(f)?;
    let relay_at = r.u16(f)?;
    let mut fields = TemplateFields {
        clt_at,
        relay_at,
        lifetimes_at: [0; LEASES_PER_CLIENT_MAX],
        lease_count,
    };
    if usize::from(lease_count) > LEASES_PER_CLIENT_MAX {
        return Err(payload_error());
    }
    for at in &mut fields.lifetimes_at[..usize::from(lease_count)] {
        *at = r.u16(f)?;
    }
    let template_len = usize::from(r.u16(f)?);
    let template = r.take(template_len, f)?;
    if usize::from(clt_at) + 4 > template.len() || usize::from(relay_at) >= template.len().max(1) {
        return Err(payload_error());
    }
    // What follows is alignment padding: zeros only.
    if r.rest().iter().any(|&b| b != 0) {
        return Err(payload_error());
    }
    Ok((template, fields))
}

/// Decode a checkpoint payload into (id, bytes).
pub fn decode_checkpoint(payload: &[u8]) -> Result<(u64, &[u8]), WireError> {
    let f = Field::Option(OptionCode::Unknown(0));
    let mut r = Reader::new(payload);
    let id = u64::from_be_bytes(r.array::<8>(f)?);
    let len = usize::from(r.u16(f)?);
    let bytes = r.take(len, f)?;
    Ok((id, bytes))
}
