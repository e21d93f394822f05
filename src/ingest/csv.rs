//! Kea's lease6 memfile rows (kea.md §2–§5): the header, the row syntax, the escaping.
//!
//! Columns are mapped by header name, so 15-, 17- and 18-column files (and unknown
//! trailing columns) read the same way. A row must have exactly as many fields as its
//! header; there is no quoting. Only `hostname` and `user_context` are escaped, as `&#x`
//! plus two hex digits. Parsing borrows the line and allocates nothing; `user_context` is
//! unescaped into a caller buffer only when it is not empty.

use core::net::Ipv6Addr;
use core::str::FromStr;

use crate::store::model::DuidBuf;
use crate::wire::DUID_LEN_MAX;

/// Most columns a header may name (18 are known; later Kea versions may add a few).
pub const COLUMNS_MAX: usize = 32;

/// Why a header line was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeaderError {
    /// A required column is missing.
    Missing(&'static str),
    /// More than [`COLUMNS_MAX`] columns.
    TooManyColumns(usize),
    /// A column name appears twice.
    Duplicate(String),
}

impl core::fmt::Display for HeaderError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::Missing(name) => write!(f, "header lacks the column {name:?}"),
            Self::TooManyColumns(n) => write!(f, "header has {n} columns, at most {COLUMNS_MAX}"),
            Self::Duplicate(name) => write!(f, "header names {name:?} twice"),
        }
    }
}

/// Column positions, from a header line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// Number of columns every row must have.
    pub columns: usize,
    address: usize,
    duid: usize,
    valid_lifetime: usize,
    expire: usize,
    subnet_id: usize,
    pref_lifetime: usize,
    lease_type: usize,
    iaid: usize,
    prefix_len: usize,
    hostname: Option<usize>,
    state: Option<usize>,
    user_context: Option<usize>,
}

const REQUIRED: [&str; 9] = [
    "address",
    "duid",
    "valid_lifetime",
    "expire",
    "subnet_id",
    "pref_lifetime",
    "lease_type",
    "iaid",
    "prefix_len",
];

impl Header {
    /// Map the columns of a header line (without its newline).
    pub fn parse(line: &str) -> Result<Self, HeaderError> {
        let mut names: [&str; COLUMNS_MAX] = [""; COLUMNS_MAX];
        let mut columns = 0;
        for name in line.split(',') {
            if columns == COLUMNS_MAX {
                return Err(HeaderError::TooManyColumns(line.split(',').count()));
            }
            if names[..columns].contains(&name) {
                return Err(HeaderError::Duplicate(name.to_owned()));
            }
            names[columns] = name;
            columns += 1;
        }
        let names = &names[..columns];
        let find = |name: &str| names.iter().position(|&n| n == name);
        let mut required = [0usize; REQUIRED.len()];
        for (slot, name) in required.iter_mut().zip(REQUIRED) {
            *slot = find(name).ok_or(HeaderError::Missing(name))?;
        }
        #[rustfmt::skip]
        let [address, duid, valid_lifetime, expire, subnet_id,
             pref_lifetime, lease_type, iaid, prefix_len] = required;
        Ok(Self {
            columns,
            address,
            duid,
            valid_lifetime,
            expire,
            subnet_id,
            pref_lifetime,
            lease_type,
            iaid,
            prefix_len,
            hostname: find("hostname"),
            state: find("state"),
            user_context: find("user_context"),
        })
    }
}

/// Kea's `lease_type` column.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseType {
    /// 0: IA_NA.
    Na,
    /// 1: IA_TA (deprecated).
    Ta,
    /// 2: IA_PD.
    Pd,
}

/// Why a row was refused: the reason counted in metrics and logged (kea.md §4, §5).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RowError {
    /// The field count differs from the header's (a split row, a hostname newline).
    ColumnCount {
        /// The header's column count.
        expected: usize,
        /// Fields found.
        found: usize,
    },
    /// `address` is not an IPv6 address.
    Address,
    /// `duid` is not colon hex of 1..=130 octets.
    Duid,
    /// A number column does not parse or is out of range.
    Number(&'static str),
    /// `lease_type` is not 0, 1 or 2.
    LeaseType,
    /// `prefix_len` is above 128, or not 128 for an address.
    PrefixLen,
    /// A `&#x` escape without two hex digits.
    Escape,
    /// The unescaped `user_context` does not fit the buffer.
    UserContextTooLong,
}

impl RowError {
    /// Stable label for the "rejected by reason" counters.
    pub const fn reason(self) -> &'static str {
        match self {
            Self::ColumnCount { .. } => "column_count",
            Self::Address => "address",
            Self::Duid => "duid",
            Self::Number(_) => "number",
            Self::LeaseType => "lease_type",
            Self::PrefixLen => "prefix_len",
            Self::Escape => "escape",
            Self::UserContextTooLong => "user_context_too_long",
        }
    }
}

impl core::fmt::Display for RowError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::ColumnCount { expected, found } => {
                write!(f, "{found} fields, the header has {expected}")
            }
            Self::Address => f.write_str("address is not an IPv6 address"),
            Self::Duid => f.write_str("duid is not colon hex of 1..130 octets"),
            Self::Number(column) => write!(f, "{column} is not a number in range"),
            Self::LeaseType => f.write_str("lease_type is not 0, 1 or 2"),
            Self::PrefixLen => f.write_str("prefix_len is out of range"),
            Self::Escape => f.write_str("a &#x escape lacks two hex digits"),
            Self::UserContextTooLong => f.write_str("user_context is too long"),
        }
    }
}

/// One parsed row. `user_context` is still escaped; see [`unescape`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Row<'a> {
    /// Address, or the prefix base address of a PD lease.
    pub address: Ipv6Addr,
    /// The client DUID (1..=130 octets; a declined lease may carry a placeholder).
    pub duid: DuidBuf,
    /// Valid lifetime; 0 = the lease is gone.
    pub valid_lifetime: u32,
    /// Unix seconds the lease expires (u64, kea.md §5).
    pub expire: u64,
    /// Kea's subnet id.
    pub subnet_id: u32,
    /// Preferred lifetime.
    pub pref_lifetime: u32,
    /// NA, TA or PD.
    pub lease_type: LeaseType,
    /// IAID.
    pub iaid: u32,
    /// 128 for addresses; the delegated length for PD.
    pub prefix_len: u8,
    /// Kea's state; 0 when the file has no state column.
    pub state: u32,
    /// The escaped user_context field ("" when absent).
    pub user_context: &'a str,
}

impl Row<'_> {
    /// The client's last transaction time, Unix seconds: expire − valid_lifetime.
    pub fn cltt(&self) -> u64 {
        self.expire.saturating_sub(u64::from(self.valid_lifetime))
    }
}

fn number<T: FromStr>(field: &str, column: &'static str) -> Result<T, RowError> {
    // FromStr accepts a leading '+'; Kea never writes one.
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit()) {
        return Err(RowError::Number(column));
    }
    field.parse().map_err(|_| RowError::Number(column))
}

/// Parse Kea's colon hex DUID (`00:03:00:01:…`, either case).
pub fn parse_duid(field: &str) -> Result<DuidBuf, RowError> {
    let mut out = [0u8; DUID_LEN_MAX];
    let mut len = 0;
    for part in field.split(':') {
        if part.len() != 2 || len == DUID_LEN_MAX {
            return Err(RowError::Duid);
        }
        out[len] = u8::from_str_radix(part, 16).map_err(|_| RowError::Duid)?;
        len += 1;
    }
    DuidBuf::new(&out[..len]).ok_or(RowError::Duid)
}

/// Parse one row (without its newline) against `header`.
pub fn parse_row<'a>(header: &Header, line: &'a str) -> Result<Row<'a>, RowError> {
    let mut fields: [&str; COLUMNS_MAX] = [""; COLUMNS_MAX];
    let mut found = 0;
    for field in line.split(',') {
        if found < COLUMNS_MAX {
            fields[found] = field;
        }
        found += 1;
    }
    if found != header.columns {
        return Err(RowError::ColumnCount {
            expected: header.columns,
            found,
        });
    }
    let address = Ipv6Addr::from_str(fields[header.address]).map_err(|_| RowError::Address)?;
    let lease_type = match fields[header.lease_type] {
        "0" => LeaseType::Na,
        "1" => LeaseType::Ta,
        "2" => LeaseType::Pd,
        _ => return Err(RowError::LeaseType),
    };
    let prefix_len: u8 = number(fields[header.prefix_len], "prefix_len")?;
    if prefix_len > 128 || (lease_type != LeaseType::Pd && prefix_len != 128) {
        return Err(RowError::PrefixLen);
    }
    let state = match header.state.map(|i| fields[i]) {
        None | Some("") => 0,
        Some(field) => number(field, "state")?,
    };
    let user_context = header.user_context.map_or("", |i| fields[i]);
    if let Some(i) = header.hostname {
        check_escapes(fields[i])?;
    }
    check_escapes(user_context)?;
    Ok(Row {
        address,
        duid: parse_duid(fields[header.duid])?,
        valid_lifetime: number(fields[header.valid_lifetime], "valid_lifetime")?,
        expire: number(fields[header.expire], "expire")?,
        subnet_id: number(fields[header.subnet_id], "subnet_id")?,
        pref_lifetime: number(fields[header.pref_lifetime], "pref_lifetime")?,
        lease_type,
        iaid: number(fields[header.iaid], "iaid")?,
        prefix_len,
        state,
        user_context,
    })
}

fn hex_digit(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn check_escapes(field: &str) -> Result<(), RowError> {
    unescape_into(field.as_bytes(), None).map(drop)
}

/// Decode Kea's `&#xNN` escapes of `field` into `out`; returns the decoded length.
pub fn unescape(field: &str, out: &mut [u8]) -> Result<usize, RowError> {
    unescape_into(field.as_bytes(), Some(out))
}

/// Decode escapes, writing into `out` when given; returns the decoded length.
fn unescape_into(field: &[u8], mut out: Option<&mut [u8]>) -> Result<usize, RowError> {
    let mut i = 0;
    let mut n = 0;
    while i < field.len() {
        let byte = if field[i..].starts_with(b"&#x") {
            let hi = field
                .get(i + 3)
                .copied()
                .and_then(hex_digit)
                .ok_or(RowError::Escape)?;
            let lo = field
                .get(i + 4)
                .copied()
                .and_then(hex_digit)
                .ok_or(RowError::Escape)?;
            i += 5;
            hi << 4 | lo
        } else {
            i += 1;
            field[i - 1]
        };
        if let Some(out) = out.as_deref_mut() {
            *out.get_mut(n).ok_or(RowError::UserContextTooLong)? = byte;
        }
        n += 1;
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    const H17: &str = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,\
prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context,hwtype,hwaddr_source";

    #[test]
    fn escaped_hostname_row_from_kea_md_section_4() {
        let header = Header::parse(H17).unwrap();
        assert_eq!(header.columns, 17);
        let line = "2001:db8:1::77,00:03:00:01:02:00:00:00:00:77,3600,1795900050,1,1800,0,7,128,\
0,0,printer&#x2c2nd floor&#x26co,02:00:00:00:00:77,0,,1,0";
        let row = parse_row(&header, line).unwrap();
        assert_eq!(row.address, "2001:db8:1::77".parse::<Ipv6Addr>().unwrap());
        assert_eq!(row.duid.as_slice(), [0, 3, 0, 1, 2, 0, 0, 0, 0, 0x77]);
        assert_eq!(
            (row.valid_lifetime, row.expire, row.cltt()),
            (3600, 1_795_900_050, 1_795_896_450)
        );
        let mut out = [0u8; 64];
        let n = unescape("printer&#x2c2nd floor&#x26co", &mut out).unwrap();
        assert_eq!(&out[..n], b"printer,2nd floor&co");
    }

    #[test]
    fn malformed_rows_name_their_reason() {
        let header = Header::parse(H17).unwrap();
        let good =
            "2001:db8:1::78,00:03:00:01:02:00:00:00:00:78,4294967295,6090863745,1,4294967295,\
0,7,128,0,0,,,0,,,";
        assert!(parse_row(&header, good).is_ok());
        let bad =
            |from: &str, to: &str| parse_row(&header, &good.replacen(from, to, 1)).map(|_| ());
        assert_eq!(
            bad("2001:db8:1::78", "2001:db8:1::zz"),
            Err(RowError::Address)
        );
        assert_eq!(bad("00:03:00:01", "00:03:0:01"), Err(RowError::Duid));
        assert_eq!(
            bad(",1,4294967295,", ",x,4294967295,"),
            Err(RowError::Number("subnet_id"))
        );
        assert_eq!(bad(",0,7,128,", ",3,7,128,"), Err(RowError::LeaseType));
        assert_eq!(bad(",0,7,128,", ",0,7,64,"), Err(RowError::PrefixLen));
        assert_eq!(
            parse_row(&header, "2001:db8:1::79,00:03,0,0,0"),
            Err(RowError::ColumnCount {
                expected: 17,
                found: 5
            })
        );
        assert_eq!(bad(",0,,,", ",0,&#x2,,"), Err(RowError::Escape));
        assert_eq!(parse_duid("00"), Ok(DuidBuf::new(&[0]).unwrap()));
    }

    #[test]
    fn headers_map_by_name() {
        let h15 = "address,duid,valid_lifetime,expire,subnet_id,pref_lifetime,lease_type,iaid,\
prefix_len,fqdn_fwd,fqdn_rev,hostname,hwaddr,state,user_context";
        assert_eq!(Header::parse(h15).unwrap().columns, 15);
        let h19 = format!("{H17},pool_id,future_column");
        assert_eq!(Header::parse(&h19).unwrap().columns, 19);
        assert_eq!(
            Header::parse("address,duid"),
            Err(HeaderError::Missing("valid_lifetime"))
        );
        assert_eq!(
            Header::parse(&format!("{H17},state")),
            Err(HeaderError::Duplicate("state".into()))
        );
    }
}
