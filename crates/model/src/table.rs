//! The word-embedding table: f32 values owned in memory, or read in place from a memory-mapped
//! f32 safetensors file.
//!
//! The word table is most of a multilingual encoder (250,037 x 384 of multilingual-E5-small's
//! 118M parameters), and a forward pass reads only the rows of its batch's tokens. Mapping it
//! instead of copying it is what makes a model start in well under a second: the pages of the
//! rows used are read on demand, the rest never. Clones share the values; writing through
//! [`DerefMut`] copies them into memory first (copy on write), so a mapped
//! file is never written.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A read-only memory map of a file. The file must not be modified or truncated while it is
/// mapped (see [`MappedFile::open`]).
pub struct MappedFile {
    map: memmap2::Mmap,
    path: std::path::PathBuf,
}

impl MappedFile {
    /// Maps `path` read-only.
    ///
    /// Only files that nothing rewrites in place may be mapped: multiret's own cache files
    /// (written atomically, by renaming a complete file into place, so a reader keeps the old
    /// inode) and model files, which tools replace rather than edit.
    pub fn open(path: &std::path::Path) -> std::io::Result<Arc<MappedFile>> {
        let file = std::fs::File::open(path)?;
        // SAFETY: the mapping is read-only and private to this process. Its contents are only
        // read as bytes (or f32 after an alignment check), so any bit pattern is valid; the
        // callers map only files that are replaced atomically, never modified in place (see
        // above), so the pages do not change or vanish while the map lives.
        let map = unsafe { memmap2::Mmap::map(&file)? };
        Ok(Arc::new(MappedFile {
            map,
            path: path.to_path_buf(),
        }))
    }

    /// The file's path.
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The bytes of the file.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }
}

enum Data {
    Owned(Vec<f32>),
    Mapped {
        file: Arc<MappedFile>,
        /// Byte offset of the first value; 4-aligned in memory (checked at construction).
        offset: usize,
        /// Number of f32 values.
        len: usize,
    },
}

/// An f32 table that derefs to `[f32]`: owned, or a view of a memory-mapped file. Cheap to
/// clone (the values are shared); mutable access copies shared or mapped values first.
#[derive(Clone)]
pub struct Table {
    data: Arc<Data>,
}

impl Table {
    /// A view of `len` little-endian f32 values at byte `offset` of a mapped file, or `None`
    /// when they do not lie inside it, are not 4-aligned in memory, or this machine is not
    /// little-endian (read them into a [`Vec`] then).
    pub fn mapped(file: Arc<MappedFile>, offset: usize, len: usize) -> Option<Table> {
        let end = offset.checked_add(len.checked_mul(4)?)?;
        let bytes = file.bytes().get(offset..end)?;
        if cfg!(target_endian = "big") || bytemuck::try_cast_slice::<u8, f32>(bytes).is_err() {
            return None;
        }
        Some(Table {
            data: Arc::new(Data::Mapped { file, offset, len }),
        })
    }

    /// Whether the values are read from a mapped file.
    pub fn is_mapped(&self) -> bool {
        self.source().is_some()
    }

    /// The mapped file the values are read from, if any.
    pub fn source(&self) -> Option<&std::path::Path> {
        match &*self.data {
            Data::Mapped { file, .. } => Some(file.path()),
            Data::Owned(_) => None,
        }
    }
}

impl From<Vec<f32>> for Table {
    fn from(v: Vec<f32>) -> Table {
        Table {
            data: Arc::new(Data::Owned(v)),
        }
    }
}

impl Default for Table {
    fn default() -> Table {
        Table::from(Vec::new())
    }
}

impl Deref for Table {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        match &*self.data {
            Data::Owned(v) => v,
            Data::Mapped { file, offset, len } => {
                bytemuck::cast_slice(&file.bytes()[*offset..*offset + *len * 4])
            }
        }
    }
}

impl DerefMut for Table {
    fn deref_mut(&mut self) -> &mut [f32] {
        if !matches!(Arc::get_mut(&mut self.data), Some(Data::Owned(_))) {
            self.data = Arc::new(Data::Owned(self.to_vec()));
        }
        match Arc::get_mut(&mut self.data) {
            Some(Data::Owned(v)) => v,
            _ => unreachable!("made unique and owned just above"),
        }
    }
}

impl PartialEq for Table {
    fn eq(&self, other: &Table) -> bool {
        **self == **other
    }
}

impl fmt::Debug for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Table({} values{})",
            self.len(),
            if self.is_mapped() { ", mapped" } else { "" }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_views_read_the_file_and_copy_on_write() {
        let dir = std::env::temp_dir().join(format!("multiret-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.bin");
        let vals: Vec<f32> = (0..10).map(|i| i as f32 * 0.5).collect();
        let mut bytes = vec![0u8; 8];
        bytes.extend(vals.iter().flat_map(|v| v.to_le_bytes()));
        std::fs::write(&path, &bytes).unwrap();
        let file = MappedFile::open(&path).unwrap();
        assert!(Table::mapped(file.clone(), 8, 11).is_none(), "past the end");
        assert!(Table::mapped(file.clone(), 6, 2).is_none(), "misaligned");
        let t = Table::mapped(file, 8, 10).unwrap();
        assert!(t.is_mapped());
        assert_eq!(&t[..], &vals[..]);
        let mut u = t.clone();
        u[3] = 7.0;
        assert!(!u.is_mapped() && t.is_mapped());
        assert_eq!(t[3], 1.5);
        assert_eq!(u[3], 7.0);
        assert_ne!(t, u);
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "the file is never written"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
