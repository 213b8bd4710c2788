//! Between debuginfod requests and SSQP keys, so one stored ELF file answers both protocols.
//!
//! From dotnet/symstore `docs/specs/SSQP_Key_Conventions.md` and `ELFFileKeyGenerator.cs`:
//! - debug info (a file with `.debug_info`): `_.debug/elf-buildid-sym-<id>/_.debug` — the
//!   file name is literally `_.debug`, because "there are cases where all we have is the
//!   build id". This is debuginfod's `debuginfo`.
//! - a binary: `<file name>/elf-buildid-<id>/<file name>`. This is debuginfod's
//!   `executable`, but a debuginfod request carries no file name: the caller must know it
//!   (from an index of what it stores) and pass it to [`executable_key`].
//! - `<id>` is the build id in lowercase hex, **zero-padded to 20 bytes**. dotnet only keys
//!   ids of 8 to 20 bytes (`NormalizeBuildId`); debuginfod serves any length, and real ones
//!   exist outside that range (mold's and `--build-id=sha256`'s 32 bytes, `--build-id=0x…`).
//!   Those are spelled unpadded, so their keys never meet a padded one (16 or fewer, or 41
//!   or more hex digits, against 40): no SSQP publisher has them, but symhub's own store and
//!   debuginfod upstreams do.
//!
//! Sources and sections have no SSQP counterpart (SSQP keys sources by a SHA-1 of their
//! content, which a debuginfod request does not know).

use super::BuildId;
use crate::key::{KeyError, SymbolKey};

/// Length SSQP pads ELF build ids to.
pub const SSQP_BUILD_ID_BYTES: usize = 20;

/// Shortest build id dotnet's key generator accepts (lld's 8-byte `--build-id=fast`).
pub const SSQP_MIN_BUILD_ID_BYTES: usize = 8;

/// The file (and name) segment of SSQP's ELF debug-info keys.
pub const DEBUG_FILE_NAME: &str = "_.debug";

/// Why there is no SSQP key for a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SsqpError {
    #[error("the file name is not a valid key segment: {0}")]
    FileName(#[from] KeyError),
}

/// The build id as SSQP keys spell it: lowercase hex, zero-padded to 20 bytes (40 digits)
/// when it has 8 to 20 bytes, as it is otherwise (see the module's note).
pub fn ssqp_build_id(id: &BuildId) -> String {
    ssqp_id_segment("", id)
}

/// `prefix` followed by [`ssqp_build_id`], made in one allocation: a debuginfod hit makes
/// one (`format!` and a second string were a tenth of its path's instructions, callgrind).
fn ssqp_id_segment(prefix: &str, id: &BuildId) -> String {
    let n = id.len_bytes();
    let pad = if (SSQP_MIN_BUILD_ID_BYTES..=SSQP_BUILD_ID_BYTES).contains(&n) {
        SSQP_BUILD_ID_BYTES - n
    } else {
        0
    };
    let mut s = String::with_capacity(prefix.len() + 2 * (n + pad));
    s.push_str(prefix);
    s.push_str(id.as_str());
    s.extend(std::iter::repeat_n('0', 2 * pad));
    s
}

/// `_.debug/elf-buildid-sym-<padded id>/_.debug`: where SSQP keeps what debuginfod calls
/// `buildid/<id>/debuginfo`.
pub fn debuginfo_key(id: &BuildId) -> Result<SymbolKey, SsqpError> {
    let sid = ssqp_id_segment("elf-buildid-sym-", id);
    Ok(SymbolKey::from_segments(
        DEBUG_FILE_NAME,
        sid,
        DEBUG_FILE_NAME,
    )?)
}

/// `<file_name>/elf-buildid-<padded id>/<file_name>`: where SSQP keeps the binary that
/// debuginfod calls `buildid/<id>/executable`. `file_name` is a base name (`libc.so.6`,
/// `hello`), as the binary was published; a debuginfod request does not carry it.
pub fn executable_key(id: &BuildId, file_name: &str) -> Result<SymbolKey, SsqpError> {
    let sid = ssqp_id_segment("elf-buildid-", id);
    Ok(SymbolKey::from_segments(file_name, sid, file_name)?)
}

/// An SSQP key that names an ELF file by build id, read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SsqpElfKey {
    /// `_.debug/elf-buildid-sym-<id>/_.debug`
    Debuginfo { id: BuildId },
    /// `<name>/elf-buildid-<id>/<name>`
    Executable { file_name: String, id: BuildId },
}

impl SsqpElfKey {
    /// Reads an SSQP key (case-insensitively, as SSQP keys are compared). `None` for keys of
    /// other kinds or shapes (not three segments), for `elf-buildid-…` keys whose file and
    /// name segments differ, and for ids that are not a valid [`BuildId`]. The id is taken as written: padded to 20 bytes
    /// when the publisher followed the convention; see [`SsqpElfKey::build_id_candidates`].
    pub fn parse(key: &SymbolKey) -> Option<Self> {
        if !key.is_triple() {
            return None;
        }
        let id = key.id().to_ascii_lowercase();
        if let Some(hex) = id.strip_prefix("elf-buildid-sym-") {
            let debug = DEBUG_FILE_NAME;
            if !key.file().eq_ignore_ascii_case(debug) || !key.name().eq_ignore_ascii_case(debug) {
                return None;
            }
            return Some(Self::Debuginfo {
                id: BuildId::parse_hex(hex).ok()?,
            });
        }
        // `elf-buildid-coreclr-…` and other private conventions are not plain hex: refused
        // by the build id parser.
        let hex = id.strip_prefix("elf-buildid-")?;
        if key.file().to_lowercase() != key.name().to_lowercase() {
            return None;
        }
        Some(Self::Executable {
            file_name: key.name().to_owned(),
            id: BuildId::parse_hex(hex).ok()?,
        })
    }

    /// The id as written in the key.
    pub fn id(&self) -> &BuildId {
        match self {
            Self::Debuginfo { id } | Self::Executable { id, .. } => id,
        }
    }

    /// The debuginfod build ids this key may stand for, likeliest first. Padding loses the
    /// length: a 20-byte id ending in zero bytes may be a padded shorter one — 16 bytes (md5,
    /// uuid), 8 (lld's `fast`), or any length `--build-id=0x…` gave. So: every length from the
    /// last non-zero byte (and at least [`SSQP_MIN_BUILD_ID_BYTES`]) up to 20. First the
    /// shortest of the lengths linkers make (8, 16, 20) that holds every non-zero byte: one
    /// trailing zero byte is a sha1 id's 1 in 256, four are an md5 id's padding (a sha1 id
    /// ends so once in 4 billion). Then the others, shortest first. A sha1 id (last byte
    /// non-zero) is only itself; ids of other lengths (unpadded publishers) too.
    pub fn build_id_candidates(&self) -> Vec<BuildId> {
        const LINKER_LENGTHS: [usize; 3] = [8, 16, SSQP_BUILD_ID_BYTES];
        let id = self.id();
        if id.len_bytes() != SSQP_BUILD_ID_BYTES {
            return vec![id.clone()];
        }
        let bytes = id.to_bytes();
        let used = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        let shortest = used.max(SSQP_MIN_BUILD_ID_BYTES);
        let likeliest = LINKER_LENGTHS.into_iter().find(|&n| n >= shortest);
        likeliest
            .into_iter()
            .chain((shortest..=SSQP_BUILD_ID_BYTES).filter(|&n| Some(n) != likeliest))
            .filter_map(|len| BuildId::from_bytes(&bytes[..len]).ok())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The examples of SSQP_Key_Conventions.md.
    const SHA1: &str = "180a373d6afbabf0eb1f09be1bc45bd796a71085";
    const MD5: &str = "180a373d6afbabf0eb1f09be1bc45bd7";

    fn id(s: &str) -> BuildId {
        BuildId::parse_hex(s).unwrap()
    }

    #[test]
    fn keys_follow_the_ssqp_conventions() {
        assert_eq!(
            debuginfo_key(&id(SHA1)).unwrap().to_string(),
            format!("_.debug/elf-buildid-sym-{SHA1}/_.debug")
        );
        assert_eq!(
            executable_key(&id(SHA1), "foo.so").unwrap().to_string(),
            format!("foo.so/elf-buildid-{SHA1}/foo.so")
        );
        // The spec's 16-byte example, padded with 4 zero bytes.
        assert_eq!(
            debuginfo_key(&id(MD5)).unwrap().to_string(),
            format!("_.debug/elf-buildid-sym-{MD5}00000000/_.debug")
        );
        assert_eq!(
            ssqp_build_id(&id("0123456789abcdef")),
            format!("0123456789abcdef{}", "0".repeat(24))
        );
        // Uppercase input, lowercase key.
        assert_eq!(ssqp_build_id(&id(&SHA1.to_uppercase())), SHA1);
    }

    #[test]
    fn ids_dotnet_never_keys_are_spelled_unpadded_and_read_back() {
        let short = id("0123456789abcd");
        let key = debuginfo_key(&short).unwrap();
        assert_eq!(
            key.to_string(),
            "_.debug/elf-buildid-sym-0123456789abcd/_.debug"
        );
        assert_eq!(
            SsqpElfKey::parse(&key).unwrap().build_id_candidates(),
            [short]
        );
        let sha256 = id(&"ab".repeat(32));
        let key = executable_key(&sha256, "a").unwrap();
        assert_eq!(
            key.to_string(),
            format!("a/elf-buildid-{}/a", "ab".repeat(32))
        );
        assert_eq!(
            SsqpElfKey::parse(&key).unwrap().build_id_candidates(),
            [sha256]
        );
        let longest = id(&"cd".repeat(64));
        assert!(debuginfo_key(&longest).is_ok());
        for bad in ["", "a/b", "..", "x\n"] {
            assert!(
                matches!(executable_key(&id(SHA1), bad), Err(SsqpError::FileName(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn keys_read_back_to_their_candidates() {
        let key = debuginfo_key(&id(MD5)).unwrap();
        let back = SsqpElfKey::parse(&key).unwrap();
        assert!(matches!(back, SsqpElfKey::Debuginfo { .. }));
        let c = back.build_id_candidates();
        assert_eq!(c.len(), 5, "16 to 20 bytes");
        assert_eq!(c[0], id(MD5));
        assert_eq!(c[4], id(&format!("{MD5}00000000")));

        let exe = executable_key(&id("0123456789abcdef"), "libz.so.1").unwrap();
        let back = SsqpElfKey::parse(&exe).unwrap();
        assert_eq!(
            back,
            SsqpElfKey::Executable {
                file_name: "libz.so.1".into(),
                id: id(&format!("0123456789abcdef{}", "0".repeat(24)))
            }
        );
        let c = back.build_id_candidates();
        assert_eq!(c.len(), 13, "8 to 20 bytes");
        assert_eq!(c[0], id("0123456789abcdef"));
        assert!(c.iter().zip(8..).all(|(b, n)| b.len_bytes() == n));
        // The fuzzer's case: an 11-byte id (`--build-id=0x…`) is among its candidates, after
        // the md5 length that holds it.
        let odd = id("180a373d6afbabf0e2caec");
        let back = SsqpElfKey::parse(&debuginfo_key(&odd).unwrap()).unwrap();
        let c = back.build_id_candidates();
        assert_eq!((c[0].len_bytes(), &c[1]), (16, &odd));
        // A sha1 id ending in a zero byte is asked as itself first.
        let sha1_00 = id("180a373d6afbabf0eb1f09be1bc45bd796a71000");
        let back = SsqpElfKey::parse(&debuginfo_key(&sha1_00).unwrap()).unwrap();
        assert_eq!(
            back.build_id_candidates(),
            [sha1_00, id("180a373d6afbabf0eb1f09be1bc45bd796a710")]
        );
        // An id whose own last byte is zero is still found.
        let zero_end = id("0123456789abcd00");
        let back = SsqpElfKey::parse(&debuginfo_key(&zero_end).unwrap()).unwrap();
        assert!(back.build_id_candidates().contains(&zero_end));

        let full = SsqpElfKey::parse(&debuginfo_key(&id(SHA1)).unwrap()).unwrap();
        assert_eq!(full.build_id_candidates(), vec![id(SHA1)]);
        // Unpadded ids some publishers write stay as they are.
        let k = SymbolKey::parse_path(&format!("_.DEBUG/ELF-BUILDID-SYM-{MD5}/_.debug")).unwrap();
        assert_eq!(
            SsqpElfKey::parse(&k).unwrap().build_id_candidates(),
            vec![id(MD5)]
        );
    }

    #[test]
    fn other_keys_are_not_elf_keys() {
        for k in [
            "foo.pdb/ABCDEF0123456789ABCDEF01234567891/foo.pdb",
            "foo.so/elf-buildid-abc/foo.so",
            "foo.so/elf-buildid-zz/foo.so",
            "foo.so/elf-buildid-ab/bar.so",
            "libcoreclr.so/elf-buildid-coreclr-ab/libmscordaccore.so",
            "x.debug/elf-buildid-sym-ab/x.debug",
            "foo.dylib/mach-uuid-497b72f6390a44fc878e5a2d63b6cc4b/foo.dylib",
            "_.debug/elf-buildid-sym-ab/x/_.debug",
            "_.debug/x/elf-buildid-sym-ab/_.debug",
            "a/elf-buildid-ab/b/a",
            "12387532",
        ] {
            let key = SymbolKey::parse_path(k).unwrap();
            assert_eq!(SsqpElfKey::parse(&key), None, "{k}");
        }
        let case = SymbolKey::parse_path("Foo.so/elf-buildid-ab/foo.SO").unwrap();
        assert!(SsqpElfKey::parse(&case).is_some());
    }
}
