//! The few bytes of a Windows PDB that identify it, read from its MSF 7.0 container without
//! reading any stream whole: the `pdb` crate reads a stream entirely to parse it, and the DBI
//! stream of a multi-gigabyte PDB is hundreds of megabytes, while its header (the age and
//! the machine) is 64 bytes. Layout from LLVM's "The MSF File Format" and
//! "The PDB Info Stream" / "The DBI Stream" documents.
//!
//! Superblock: magic (32 bytes), block size (u32 @32), free block map (@36), block count
//! (@40), directory size in bytes (@44), unknown (@48), block of the directory's block list
//! (@52). Directory: stream count, each stream's size (`u32::MAX`: no stream), then each
//! stream's block numbers.

use object::ReadRef;

/// Block sizes MSF 7.0 writers use (LLVM's list; Visual Studio 2022 writes 8192 and up for
/// PDBs over 4 GiB).
const BLOCK_SIZES: [u64; 7] = [512, 1024, 2048, 4096, 8192, 16384, 32768];

pub(super) struct Msf<R> {
    data: R,
    block_size: u64,
    block_count: u64,
    /// The blocks the directory is stored in, in order.
    directory: Vec<u32>,
    directory_len: u64,
}

impl<'data, R: ReadRef<'data>> Msf<R> {
    pub(super) fn open(data: R) -> Result<Self, String> {
        let sb = data
            .read_bytes_at(0, 56)
            .map_err(|()| "truncated superblock".to_owned())?;
        let word = |at: usize| u64::from(u32::from_le_bytes(sb[at..at + 4].try_into().expect("4")));
        let (block_size, block_count) = (word(32), word(40));
        let (directory_len, map_block) = (word(44), word(52));
        if !BLOCK_SIZES.contains(&block_size) {
            return Err(format!("block size {block_size}"));
        }
        if map_block >= block_count || directory_len == 0 {
            return Err("no stream directory".into());
        }
        let blocks = directory_len.div_ceil(block_size);
        // The directory's block list must fit in the one block that holds it.
        if blocks * 4 > block_size {
            return Err(format!("a stream directory of {directory_len} bytes"));
        }
        let list = data
            .read_bytes_at(map_block * block_size, blocks * 4)
            .map_err(|()| "truncated stream directory".to_owned())?;
        let directory: Vec<u32> = list
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")))
            .collect();
        if directory.iter().any(|&b| u64::from(b) >= block_count) {
            return Err("a stream directory outside the file".into());
        }
        Ok(Self {
            data,
            block_size,
            block_count,
            directory,
            directory_len,
        })
    }

    /// The `i`th u32 of the directory.
    fn directory_word(&self, i: u64) -> Option<u64> {
        let at = i.checked_mul(4)?;
        if at + 4 > self.directory_len {
            return None;
        }
        let block = *self
            .directory
            .get(usize::try_from(at / self.block_size).ok()?)?;
        let offset = u64::from(block) * self.block_size + at % self.block_size;
        let b = self.data.read_bytes_at(offset, 4).ok()?;
        Some(u64::from(u32::from_le_bytes(b.try_into().ok()?)))
    }

    /// The first `len` bytes of stream `index` (`len` within its first block), or `None` if
    /// the stream is missing or shorter.
    pub(super) fn stream_head(&self, index: u64, len: u64) -> Option<&'data [u8]> {
        let streams = self.directory_word(0)?;
        if index >= streams || len > self.block_size {
            return None;
        }
        let size_of = |i: u64| match self.directory_word(1 + i)? {
            0xffff_ffff => Some(0),
            n => Some(n),
        };
        if size_of(index)? < len {
            return None;
        }
        // Block lists follow the sizes, in stream order: skip those before `index`.
        let mut at = 1 + streams;
        for i in 0..index {
            at += size_of(i)?.div_ceil(self.block_size);
        }
        let block = self.directory_word(at)?;
        if block >= self.block_count {
            return None;
        }
        self.data.read_bytes_at(block * self.block_size, len).ok()
    }

    /// Where the file's blocks end: past the file's length, the file is a cut copy.
    pub(super) fn end(&self) -> u64 {
        self.block_size * self.block_count
    }
}
