//! Portable PDBs (.NET): the id that SSQP keys them by, read from the file's own metadata,
//! so `.snupkg` packages (which have no `symbol_index.json`) can be served:
//! `<name>.pdb/<guid>FFFFFFFF/<name>.pdb`.
//!
//! Layout (ECMA-335 II.24.2.1 and the Portable PDB spec): a metadata root `BSJB`, a version
//! string, then stream headers; the `#Pdb` stream starts with the 20-byte PDB id, a GUID
//! followed by a 4-byte stamp.

use crate::key::SymbolKey;

/// How much of a file is read to find its id. The `#Pdb` stream comes first in files the
/// compilers write, a few hundred bytes in; a file whose id lies further is not derived.
pub const PREFIX_LIMIT: usize = 1024 * 1024;

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The GUID of a portable PDB, from the first bytes of the file.
pub fn portable_pdb_guid(data: &[u8]) -> Option<[u8; 16]> {
    if data.get(0..4)? != b"BSJB" {
        return None;
    }
    let version_len = u32_at(data, 12)? as usize;
    let mut at = 16usize.checked_add(version_len)?;
    at = at.checked_add(2)?; // flags
    let streams = u16_at(data, at)? as usize;
    at += 2;
    for _ in 0..streams.min(64) {
        let offset = u32_at(data, at)? as usize;
        let _size = u32_at(data, at + 4)?;
        at += 8;
        let name_len = data.get(at..)?.iter().take(32).position(|&b| b == 0)?;
        let name = &data[at..at + name_len];
        at += (name_len + 4) & !3; // name, NUL, padding to 4
        if name == b"#Pdb" {
            return data.get(offset..offset + 16)?.try_into().ok();
        }
    }
    None
}

/// Where a portable PDB's metadata streams end (the furthest `offset + size` of its stream
/// headers), read from the first bytes of the file; past the file's length, it is a cut copy.
pub fn portable_pdb_extent(data: &[u8]) -> Option<u64> {
    if data.get(0..4)? != b"BSJB" {
        return None;
    }
    let version_len = u32_at(data, 12)? as usize;
    let mut at = 16usize.checked_add(version_len)?.checked_add(2)?;
    let streams = u16_at(data, at)? as usize;
    at += 2;
    let mut end = 0u64;
    for _ in 0..streams.min(64) {
        let offset = u64::from(u32_at(data, at)?);
        let size = u64::from(u32_at(data, at + 4)?);
        at += 8;
        let name_len = data.get(at..)?.iter().take(32).position(|&b| b == 0)?;
        at += (name_len + 4) & !3;
        end = end.max(offset + size);
    }
    Some(end)
}

/// The GUID as SSQP spells it: the .NET `Guid` byte order, lowercase hex.
pub fn guid_hex(g: &[u8; 16]) -> String {
    format!(
        "{:08x}{:04x}{:04x}{}",
        u32::from_le_bytes(g[0..4].try_into().unwrap()),
        u16::from_le_bytes(g[4..6].try_into().unwrap()),
        u16::from_le_bytes(g[6..8].try_into().unwrap()),
        g[8..16]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    )
}

/// The SSQP key of a portable PDB named `file_name` (a base name), if `prefix` is one.
pub fn portable_pdb_key(file_name: &str, prefix: &[u8]) -> Option<SymbolKey> {
    let guid = portable_pdb_guid(prefix)?;
    let id = format!("{}FFFFFFFF", guid_hex(&guid));
    SymbolKey::from_segments(file_name, id, file_name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_portable_pdb() {
        assert_eq!(portable_pdb_guid(b""), None);
        assert_eq!(portable_pdb_guid(b"Microsoft C/C++ MSF 7.00\r\n"), None);
        assert_eq!(
            portable_pdb_guid(b"BSJB\x01\x00\x01\x00\0\0\0\0\xff\xff\xff\xff"),
            None
        );
        let mut truncated = b"BSJB\x01\x00\x01\x00\0\0\0\0\x04\0\0\0v1.0\0\0\x01\0".to_vec();
        truncated.extend_from_slice(&[0x6c, 0, 0, 0, 0x20, 0, 0, 0]);
        truncated.extend_from_slice(b"#Pdb\0\0\0\0");
        assert_eq!(
            portable_pdb_guid(&truncated),
            None,
            "offset beyond the data"
        );
    }

    #[test]
    fn the_fixture_pdb_has_the_documented_key() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/fixtures/dotnet/System.Threading.Thread.pdb"
        );
        let data = std::fs::read(path).expect("the fixture is in the repository (tests/fixtures)");
        let key = portable_pdb_key("System.Threading.Thread.pdb", &data).unwrap();
        assert_eq!(
            key.normalized(),
            "system.threading.thread.pdb/a43b38726e6a4b3cb1691f35f0d6cc48ffffffff/system.threading.thread.pdb"
        );
    }

    #[test]
    fn guid_byte_order_is_dotnets() {
        let g = [
            0x72, 0x38, 0x3b, 0xa4, 0x6a, 0x6e, 0x3c, 0x4b, 0xb1, 0x69, 0x1f, 0x35, 0xf0, 0xd6,
            0xcc, 0x48,
        ];
        assert_eq!(guid_hex(&g), "a43b38726e6a4b3cb1691f35f0d6cc48");
    }
}
