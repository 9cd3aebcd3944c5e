//! The snapshot format: every record of the state-machine column families, framed and checksummed.
//! Used to ship state to lagging followers (openraft sends it in chunks) and kept on disk as the
//! replica's current snapshot.
//!
//! Layout: `GSNAP1\n`, then records `[cf index u8][key len u32][key][value len u32][value]`, then the
//! end marker `0xff` and a CRC-32 of everything before it.

use rocksdb::{SnapshotWithThreadMode, WriteBatch, DB};

use super::db::{cf, STATE_MACHINE_CFS};
use crate::error::StoreError;
use crate::mvcc::reader::ReadView;

const MAGIC: &[u8] = b"GSNAP1\n";
const END: u8 = 0xff;

/// Serialises the state-machine column families as seen by `snapshot`.
pub fn write_snapshot(db: &DB, snapshot: &SnapshotWithThreadMode<'_, DB>) -> Result<Vec<u8>, StoreError> {
    let view = ReadView::at_snapshot(db, snapshot);
    let mut out = MAGIC.to_vec();
    for (i, name) in STATE_MACHINE_CFS.iter().enumerate() {
        view.scan(name, &[], None, |k, v| {
            out.push(i as u8);
            out.extend_from_slice(&(k.len() as u32).to_be_bytes());
            out.extend_from_slice(k);
            out.extend_from_slice(&(v.len() as u32).to_be_bytes());
            out.extend_from_slice(v);
            Ok(true)
        })?;
    }
    out.push(END);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// Builds one write batch that replaces the state-machine column families with the snapshot's records.
/// The caller writes it atomically, so a crash during install leaves the old state or the new one.
pub fn install_batch(db: &DB, data: &[u8]) -> Result<WriteBatch, StoreError> {
    if data.len() < MAGIC.len() + 5 || !data.starts_with(MAGIC) {
        return Err(StoreError::corrupt("snapshot", "missing header"));
    }
    let (body, crc) = data.split_at(data.len() - 4);
    let expected = u32::from_be_bytes(crc.try_into().map_err(|e| StoreError::corrupt("snapshot", e))?);
    if crc32fast::hash(body) != expected {
        return Err(StoreError::corrupt("snapshot", "checksum mismatch"));
    }
    let mut batch = WriteBatch::default();
    for name in STATE_MACHINE_CFS {
        let handle = cf(db, name);
        for item in db.iterator_cf(handle, rocksdb::IteratorMode::Start) {
            let (k, _) = item?;
            batch.delete_cf(handle, k);
        }
    }
    let mut pos = MAGIC.len();
    let read_u32 = |pos: &mut usize| -> Result<usize, StoreError> {
        let b = body.get(*pos..*pos + 4).ok_or_else(|| StoreError::corrupt("snapshot", "truncated record"))?;
        *pos += 4;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    loop {
        let tag = *body.get(pos).ok_or_else(|| StoreError::corrupt("snapshot", "missing end marker"))?;
        pos += 1;
        if tag == END {
            break;
        }
        let name = STATE_MACHINE_CFS
            .get(tag as usize)
            .ok_or_else(|| StoreError::corrupt("snapshot", format!("unknown column family {tag}")))?;
        let klen = read_u32(&mut pos)?;
        let key = body.get(pos..pos + klen).ok_or_else(|| StoreError::corrupt("snapshot", "truncated key"))?;
        pos += klen;
        let vlen = read_u32(&mut pos)?;
        let value = body.get(pos..pos + vlen).ok_or_else(|| StoreError::corrupt("snapshot", "truncated value"))?;
        pos += vlen;
        batch.put_cf(cf(db, name), key, value);
    }
    if pos != body.len() {
        return Err(StoreError::corrupt("snapshot", "trailing bytes after end marker"));
    }
    Ok(batch)
}
