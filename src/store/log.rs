//! The event log: append-only segment files of checksummed records, khabar's durable store of
//! events and of every other acknowledged write.
//!
//! # Format
//! A segment file `log/<number, 20 digits>.log` starts with a 16-byte header (`KHABARLG`, the
//! format version, 4 reserved bytes) followed by frames:
//!
//! | bytes | content                                     |
//! |-------|---------------------------------------------|
//! | 4     | frame magic `KHR1`                          |
//! | 4     | payload length, little-endian               |
//! | 4     | CRC-32 (IEEE) of the payload, inverted, LE  |
//! | n     | payload (a record, see `record`)            |
//!
//! The written frames end where a frame header of 12 zero bytes would start: segment files are
//! created at their full size, filled with zeros and synced before any frame is written into
//! them. Writing into space that already exists makes the `fdatasync` of a group a pure data
//! sync, with no file-size change to commit: about half the time of syncing an append on the
//! disks measured (see BENCHMARKS.md). Segments grow from 4 MiB (the first) to
//! [`SEGMENT_TARGET_BYTES`], so a small store stays small; the next segment is prepared in the
//! background, in paced steps, once the current one is a quarter full.
//!
//! # Durability
//! The writer writes a whole group of frames with one `pwrite`; the caller makes them durable
//! with one `fdatasync` ([`LogWriter::files_to_sync`]) before any of them is acknowledged. When
//! a group does not fit in the rest of a segment, the old file is synced and the writer moves on
//! to the next one, whose zeros and directory entry were synced when it was prepared. Every
//! frame before a durable frame is durable too, because frames are only ever added after the
//! last one.
//!
//! # Recovery
//! A crash during a write leaves a torn tail: a last frame that is short or fails its checksum,
//! with nothing valid after it. [`Log::recover`] zeroes such a tail (with a warning); a bad frame
//! followed by valid ones is damage, not a torn write, and stops the start with an error naming
//! the file and offset.

use std::{
    collections::BTreeMap,
    fs::{File, OpenOptions},
    os::unix::fs::FileExt,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use bytes::Bytes;
use tracing::warn;

use super::{DiskFaults, DiskOperation, Result, StoreError};

/// Size of a full-grown segment: the next one is started when a group does not fit.
pub const SEGMENT_TARGET_BYTES: u64 = 64 << 20;
/// Pause after each mebibyte of zeros written while preparing a segment in the background.
const PREPARE_PAUSE: Duration = Duration::from_millis(4);
/// Size of the first segment; each next one is twice as large, up to the target.
const FIRST_SEGMENT_BYTES: u64 = 4 << 20;
/// Length of a segment's header; the first frame starts here.
pub const SEGMENT_HEADER_LEN: u64 = 16;
const SEGMENT_MAGIC: &[u8; 8] = b"KHABARLG";
const SEGMENT_FORMAT: u32 = 1;
const FRAME_MAGIC: &[u8; 4] = b"KHR1";
/// Bytes before a frame's payload.
pub const FRAME_HEADER_LEN: usize = 12;
/// Frame checksums are the CRC-32 inverted, so that no run of zeros (where the CRC of nothing
/// is 0) ever reads as a valid frame.
fn checksum(payload: &[u8]) -> u32 {
    !crc32fast::hash(payload)
}

/// Largest payload accepted when reading; larger lengths can only come from damage.
const MAX_PAYLOAD_BYTES: usize = 1 << 30;
/// Bytes read at a time when reading the log sequentially.
const READ_CHUNK_BYTES: usize = 512 << 10;

/// A place in the log: a byte offset in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// Segment number.
    pub segment: u64,
    /// Byte offset in that segment.
    pub offset: u64,
}

impl Position {
    /// The first frame of the first segment.
    pub const START: Position = Position {
        segment: 1,
        offset: SEGMENT_HEADER_LEN,
    };
}

/// Where one frame is: its position and its length, header included.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Location {
    /// Segment number.
    pub segment: u64,
    /// Offset of the frame header.
    pub offset: u64,
    /// Frame length, header included.
    pub len: u32,
}

impl Location {
    /// The position of the frame.
    pub fn position(self) -> Position {
        Position {
            segment: self.segment,
            offset: self.offset,
        }
    }

    /// The position right after the frame.
    pub fn end(self) -> Position {
        Position {
            segment: self.segment,
            offset: self.offset + u64::from(self.len),
        }
    }
}

/// The segment files of a log directory, shared by the writer and the readers.
pub struct Log {
    dir: PathBuf,
    segments: RwLock<BTreeMap<u64, Arc<File>>>,
    faults: Arc<DiskFaults>,
}

/// What [`Log::recover`] found.
#[derive(Debug)]
pub struct Recovered {
    /// Where the next frame goes.
    pub end: Position,
    /// The last valid frame, if there is one.
    pub last: Option<Location>,
    /// Bytes of torn tail removed, if any.
    pub truncated: Option<u64>,
}

fn segment_name(segment: u64) -> String {
    format!("{segment:020}.log")
}

/// The size segment `number` is created with.
pub fn segment_capacity(number: u64) -> u64 {
    let doublings = number.saturating_sub(1).min(8) as u32;
    (FIRST_SEGMENT_BYTES << doublings).min(SEGMENT_TARGET_BYTES)
}

/// Creates segment `number` in `dir` at its full size: header, zeros, synced, then renamed into
/// place and the directory synced, so that it is never seen half made.
fn prepare_segment(dir: &Path, number: u64, faults: &DiskFaults) -> std::io::Result<File> {
    prepare_segment_paced(dir, number, Duration::ZERO, faults)
}

/// [`prepare_segment`], syncing every mebibyte of zeros and pausing `pause` after it: written in
/// one go, tens of mebibytes of zeros occupy the disk for a long moment, and every group synced
/// meanwhile waits behind them (measured: group syncs of 30-100 ms while a 64 MiB segment was
/// flushed at once).
fn prepare_segment_paced(
    dir: &Path,
    number: u64,
    pause: Duration,
    faults: &DiskFaults,
) -> std::io::Result<File> {
    faults.check(DiskOperation::SegmentPreparation)?;
    let path = dir.join(segment_name(number));
    let staging = dir.join(format!("{}.tmp", segment_name(number)));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&staging)?;
    let mut header = Vec::with_capacity(SEGMENT_HEADER_LEN as usize);
    header.extend_from_slice(SEGMENT_MAGIC);
    header.extend_from_slice(&SEGMENT_FORMAT.to_le_bytes());
    header.extend_from_slice(&[0; 4]);
    file.write_all_at(&header, 0)?;
    let zeros = vec![0; 1 << 20];
    let capacity = segment_capacity(number);
    let mut at = SEGMENT_HEADER_LEN;
    while at < capacity {
        let len = (capacity - at).min(zeros.len() as u64) as usize;
        file.write_all_at(&zeros[..len], at)?;
        at += len as u64;
        if !pause.is_zero() {
            file.sync_data()?;
            std::thread::sleep(pause);
        }
    }
    file.sync_all()?;
    std::fs::rename(&staging, &path)?;
    sync_dir(dir)?;
    Ok(file)
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: format!("{} at offset {offset}", path.display()),
        reason: reason.into(),
    }
}

/// Why bytes are not a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum FrameError {
    /// Zeros where a frame header would be: nothing was written here yet.
    End,
    /// Fewer bytes than the frame needs: the end of the file, or a torn write.
    Incomplete,
    /// Bytes that are not a valid frame.
    Invalid(&'static str),
}

/// Parses the frame at the start of `bytes`: its payload and its whole length.
pub fn parse_frame(bytes: &Bytes) -> Result<(Bytes, usize), FrameError> {
    let header = &bytes[..bytes.len().min(FRAME_HEADER_LEN)];
    if !header.is_empty() && header.iter().all(|b| *b == 0) {
        return Err(FrameError::End);
    }
    if bytes.len() < FRAME_HEADER_LEN {
        return Err(FrameError::Incomplete);
    }
    if &bytes[..4] != FRAME_MAGIC {
        return Err(FrameError::Invalid("no frame starts here"));
    }
    let len = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]) as usize;
    if len == 0 || len > MAX_PAYLOAD_BYTES {
        return Err(FrameError::Invalid("frame length is implausible"));
    }
    let crc = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    let end = FRAME_HEADER_LEN + len;
    if bytes.len() < end {
        return Err(FrameError::Incomplete);
    }
    let payload = bytes.slice(FRAME_HEADER_LEN..end);
    if checksum(&payload) != crc {
        return Err(FrameError::Invalid("checksum mismatch"));
    }
    Ok((payload, end))
}

/// Whether any valid frame starts in `bytes` at or after `from`.
fn valid_frame_after(bytes: &Bytes, from: usize) -> Option<usize> {
    let mut at = from;
    while at + FRAME_HEADER_LEN <= bytes.len() {
        let next = bytes[at..]
            .windows(FRAME_MAGIC.len())
            .position(|w| w == FRAME_MAGIC)?;
        at += next;
        if parse_frame(&bytes.slice(at..)).is_ok() {
            return Some(at);
        }
        at += 1;
    }
    None
}

fn read_fully(file: &File, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
    let mut buffer = vec![0; len];
    let mut filled = 0;
    while filled < len {
        match file.read_at(&mut buffer[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buffer.truncate(filled);
    Ok(buffer)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
impl Log {
    /// Replaces the payload of the frame at `location` by as many other bytes, with their
    /// checksum: how a test makes a record as an earlier release of khabar wrote it.
    pub(crate) fn overwrite_payload(&self, location: Location, payload: &[u8]) -> Result<()> {
        assert_eq!(
            payload.len() + FRAME_HEADER_LEN,
            location.len as usize,
            "the frame keeps its length"
        );
        let file = OpenOptions::new()
            .write(true)
            .open(self.path(location.segment))?;
        file.write_all_at(&checksum(payload).to_le_bytes(), location.offset + 8)?;
        file.write_all_at(payload, location.offset + FRAME_HEADER_LEN as u64)?;
        file.sync_all()?;
        Ok(())
    }
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, checking every segment's header.
    pub fn open(dir: &Path) -> Result<Arc<Self>> {
        Self::open_with_faults(dir, Arc::default())
    }

    /// [`Log::open`], with disk failures injected by `faults`.
    pub fn open_with_faults(dir: &Path, faults: Arc<DiskFaults>) -> Result<Arc<Self>> {
        std::fs::create_dir_all(dir)?;
        let mut segments = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.ends_with(".log.tmp")) {
                // A segment whose preparation was cut short; it held no frames.
                std::fs::remove_file(entry.path())?;
                continue;
            }
            let Some(number) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".log"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let path = entry.path();
            let file = OpenOptions::new().read(true).write(true).open(&path)?;
            check_header(&file, &path)?;
            segments.insert(number, Arc::new(file));
        }
        if let (Some(first), Some(last)) = (segments.keys().next(), segments.keys().next_back())
            && (last - first + 1) as usize != segments.len()
        {
            return Err(corrupt(
                dir,
                0,
                format!("segments {first} to {last} are not contiguous: some are missing"),
            ));
        }
        Ok(Arc::new(Self {
            dir: dir.to_owned(),
            segments: RwLock::new(segments),
            faults,
        }))
    }

    /// The directory of the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn segment(&self, number: u64) -> Option<Arc<File>> {
        self.segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&number)
            .cloned()
    }

    /// Numbers of the first and last segment, if there are any.
    pub fn segment_range(&self) -> Option<(u64, u64)> {
        let segments = self.segments.read().unwrap_or_else(|p| p.into_inner());
        Some((*segments.keys().next()?, *segments.keys().next_back()?))
    }

    fn path(&self, segment: u64) -> PathBuf {
        self.dir.join(segment_name(segment))
    }

    /// Reads the payload of the frame at `location`, checking its checksum.
    pub fn read(&self, location: Location) -> Result<Bytes> {
        let path = || self.path(location.segment);
        let file = self
            .segment(location.segment)
            .ok_or_else(|| corrupt(&path(), location.offset, "segment file is missing"))?;
        let bytes = Bytes::from(read_fully(&file, location.offset, location.len as usize)?);
        match parse_frame(&bytes) {
            Ok((payload, len)) if len == location.len as usize => Ok(payload),
            Ok(_) => Err(corrupt(&path(), location.offset, "frame length differs")),
            Err(FrameError::Incomplete) => Err(corrupt(&path(), location.offset, "frame is cut")),
            Err(FrameError::End) => Err(corrupt(
                &path(),
                location.offset,
                "no frame was written here",
            )),
            Err(FrameError::Invalid(why)) => Err(corrupt(&path(), location.offset, why)),
        }
    }

    /// Reads frames in order from `from`, calling `visit` with each one's location and payload
    /// until it returns `false` or the written log ends. Only frames known to be complete may be
    /// asked for: readers stop at the durable head, so a frame being written is never reached.
    pub fn read_from(
        &self,
        from: Position,
        mut visit: impl FnMut(Location, Bytes) -> Result<bool>,
    ) -> Result<()> {
        let mut position = from;
        let mut chunk_bytes = READ_CHUNK_BYTES;
        loop {
            let Some(file) = self.segment(position.segment) else {
                return Ok(());
            };
            let chunk = Bytes::from(read_fully(&file, position.offset, chunk_bytes)?);
            let mut at = 0;
            let mut segment_ended = chunk.is_empty();
            while at < chunk.len() {
                match parse_frame(&chunk.slice(at..)) {
                    Ok((payload, len)) => {
                        let location = Location {
                            segment: position.segment,
                            offset: position.offset + at as u64,
                            len: len as u32,
                        };
                        at += len;
                        if !visit(location, payload)? {
                            return Ok(());
                        }
                    }
                    Err(FrameError::Incomplete) => break,
                    Err(FrameError::End) => {
                        segment_ended = true;
                        break;
                    }
                    Err(FrameError::Invalid(why)) => {
                        return Err(corrupt(
                            &self.path(position.segment),
                            position.offset + at as u64,
                            why,
                        ));
                    }
                }
            }
            if segment_ended {
                // The frames of this segment end here; they go on in the next one, if any.
                if self.segment(position.segment + 1).is_none() {
                    return Ok(());
                }
                position = Position {
                    segment: position.segment + 1,
                    offset: SEGMENT_HEADER_LEN,
                };
                chunk_bytes = READ_CHUNK_BYTES;
                continue;
            }
            if at == 0 {
                if chunk.len() < chunk_bytes {
                    // A cut frame at the end of the file: nothing more has been written yet.
                    return Ok(());
                }
                // One frame larger than the chunk.
                chunk_bytes = chunk_bytes.saturating_mul(2);
                continue;
            }
            chunk_bytes = READ_CHUNK_BYTES;
            position.offset += at as u64;
        }
    }

    /// Checks the log from `from` to its end at start-up: calls `visit` with every frame in
    /// order, removes a torn tail, and fails on damage before the tail.
    pub fn recover(
        &self,
        applied: Option<Location>,
        mut visit: impl FnMut(Location, Bytes) -> Result<()>,
    ) -> Result<Recovered> {
        let Some((first, last)) = self.segment_range() else {
            if let Some(applied) = applied {
                return Err(corrupt(
                    &self.dir,
                    0,
                    format!(
                        "the index has applied the log up to segment {} offset {}, but the log \
                         has no segments: acknowledged writes are missing",
                        applied.segment, applied.offset
                    ),
                ));
            }
            return Ok(Recovered {
                end: Position::START,
                last: None,
                truncated: None,
            });
        };
        let from = match applied {
            Some(applied) => {
                // The record the index applied last must still be there, intact: otherwise the
                // log lost (or damaged) writes that were acknowledged.
                if let Err(e) = self.read(applied) {
                    return Err(corrupt(
                        &self.path(applied.segment),
                        applied.offset,
                        format!(
                            "the index has applied the log up to the record here, which is \
                             missing or damaged ({e}): acknowledged writes are missing"
                        ),
                    ));
                }
                applied.end()
            }
            None => Position {
                segment: first,
                offset: SEGMENT_HEADER_LEN,
            },
        };
        let mut last_frame = applied;
        if from.segment < first || from.segment > last {
            return Err(corrupt(
                &self.path(from.segment),
                from.offset,
                format!(
                    "the index has applied the log up to here, but the log holds segments \
                     {first} to {last}: acknowledged writes are missing"
                ),
            ));
        }
        self.verify_before(first, from)?;
        for segment in from.segment..=last {
            let file = self
                .segment(segment)
                .ok_or_else(|| corrupt(&self.path(segment), 0, "segment file disappeared"))?;
            let start = if segment == from.segment {
                from.offset
            } else {
                SEGMENT_HEADER_LEN
            };
            let len = file.metadata()?.len();
            if start > len {
                return Err(corrupt(
                    &self.path(segment),
                    start,
                    format!(
                        "the index has applied the log up to here, but the file ends at {len}: \
                         acknowledged writes are missing"
                    ),
                ));
            }
            // Segments are bounded (64 MiB plus one group), so one read each is fine.
            let bytes = Bytes::from(read_fully(&file, start, (len - start) as usize)?);
            let mut at = 0;
            while at < bytes.len() {
                match parse_frame(&bytes.slice(at..)) {
                    Ok((payload, frame_len)) => {
                        let location = Location {
                            segment,
                            offset: start + at as u64,
                            len: frame_len as u32,
                        };
                        visit(location, payload)?;
                        last_frame = Some(location);
                        at += frame_len;
                    }
                    Err(FrameError::End) if segment != last => break,
                    Err(error) => {
                        let offset = start + at as u64;
                        let why = match error {
                            FrameError::End => "end of the frames",
                            FrameError::Incomplete => "cut short",
                            FrameError::Invalid(why) => why,
                        };
                        if segment != last {
                            return Err(corrupt(
                                &self.path(segment),
                                offset,
                                format!("damaged record in a closed segment ({why})"),
                            ));
                        }
                        let Some(last_written) = bytes[at..].iter().rposition(|b| *b != 0) else {
                            // Nothing but zeros after the last frame: a clean end.
                            break;
                        };
                        if let Some(valid) = valid_frame_after(&bytes, at + 1) {
                            return Err(corrupt(
                                &self.path(segment),
                                offset,
                                format!(
                                    "damaged record ({why}) followed by a valid one at offset {}: \
                                     this is damage, not a torn write; restore the data directory \
                                     from a backup",
                                    start + valid as u64
                                ),
                            ));
                        }
                        let removed = last_written as u64 + 1;
                        warn!(
                            file = %self.path(segment).display(),
                            offset,
                            bytes = removed,
                            reason = why,
                            "zeroing the torn tail of the log (a write cut short by a crash; it was never acknowledged)"
                        );
                        file.write_all_at(&vec![0; removed as usize], offset)?;
                        file.sync_data()?;
                        return Ok(Recovered {
                            end: Position { segment, offset },
                            last: last_frame,
                            truncated: Some(removed),
                        });
                    }
                }
            }
            if segment == last {
                return Ok(Recovered {
                    end: Position {
                        segment,
                        offset: start + at as u64,
                    },
                    last: last_frame,
                    truncated: None,
                });
            }
        }
        unreachable!("the loop returns at the last segment")
    }

    /// Checks every frame before `end` (records the index has applied, so acknowledged ones):
    /// a damaged one, which the index would otherwise serve errors for later, stops the start
    /// now, naming its file and offset. Reads each segment once, sequentially.
    fn verify_before(&self, first: u64, end: Position) -> Result<()> {
        for segment in first..=end.segment {
            let file = self
                .segment(segment)
                .ok_or_else(|| corrupt(&self.path(segment), 0, "segment file disappeared"))?;
            let until = if segment == end.segment {
                end.offset
            } else {
                file.metadata()?.len()
            };
            let bytes = Bytes::from(read_fully(
                &file,
                SEGMENT_HEADER_LEN,
                until.saturating_sub(SEGMENT_HEADER_LEN) as usize,
            )?);
            let mut at = 0;
            while at < bytes.len() {
                match parse_frame(&bytes.slice(at..)) {
                    Ok((_, len)) => at += len,
                    Err(FrameError::End) if segment != end.segment => break,
                    Err(error) => {
                        let why = match error {
                            FrameError::End => "missing",
                            FrameError::Incomplete => "cut short",
                            FrameError::Invalid(why) => why,
                        };
                        return Err(corrupt(
                            &self.path(segment),
                            SEGMENT_HEADER_LEN + at as u64,
                            format!(
                                "damaged record ({why}) among those already acknowledged: \
                                 restore the data directory from a backup"
                            ),
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The writer, appending at `end` (what [`Log::recover`] returned).
    pub fn writer(self: &Arc<Self>, end: Position) -> Result<LogWriter> {
        let file = match self.segment(end.segment) {
            Some(file) => file,
            None => self.add_segment(
                end.segment,
                prepare_segment(&self.dir, end.segment, &self.faults)?,
            ),
        };
        Ok(LogWriter {
            log: self.clone(),
            segment: end.segment,
            file,
            written: end.offset,
            buffer: Vec::with_capacity(1 << 20),
            unsynced: Vec::new(),
            last: None,
            preparing: None,
        })
    }

    fn add_segment(&self, number: u64, file: File) -> Arc<File> {
        let file = Arc::new(file);
        self.segments
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(number, file.clone());
        file
    }

    /// Bytes of all segments.
    pub fn size_on_disk(&self) -> Result<u64> {
        let segments: Vec<Arc<File>> = self
            .segments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        let mut total = 0;
        for file in segments {
            total += file.metadata()?.len();
        }
        Ok(total)
    }
}

fn check_header(file: &File, path: &Path) -> Result<()> {
    let header = read_fully(file, 0, SEGMENT_HEADER_LEN as usize)?;
    if header.len() < SEGMENT_HEADER_LEN as usize || &header[..8] != SEGMENT_MAGIC {
        return Err(corrupt(
            path,
            0,
            "not a khabar log segment (no KHABARLG header): a file from another program?",
        ));
    }
    let format = u32::from_le_bytes([header[8], header[9], header[10], header[11]]);
    if format != SEGMENT_FORMAT {
        return Err(corrupt(
            path,
            8,
            format!(
                "log segment format {format}; this khabar reads format {SEGMENT_FORMAT}: use \
                 the khabar version that wrote it"
            ),
        ));
    }
    Ok(())
}

/// Appends frames; owned by the single writer thread.
pub struct LogWriter {
    log: Arc<Log>,
    segment: u64,
    file: Arc<File>,
    /// Bytes of the current segment already written to the file.
    written: u64,
    /// Frames not yet written, to go at `written`.
    buffer: Vec<u8>,
    /// Segments written to since the last [`LogWriter::files_to_sync`].
    unsynced: Vec<Arc<File>>,
    /// The last frame appended.
    last: Option<Location>,
    /// The next segment, being prepared in the background.
    preparing: Option<std::thread::JoinHandle<std::io::Result<File>>>,
}

impl LogWriter {
    /// Adds a frame holding `record` to the pending write and returns where it will be. Rolls
    /// to a new segment first when this one is full.
    pub fn append(&mut self, record: &impl prost::Message) -> Result<Location> {
        self.append_with(record.encoded_len(), |buffer| {
            // A Vec grows as needed, so encoding into it cannot run out of room.
            let _ = record.encode(buffer);
        })
    }

    /// Adds a frame whose `payload_len` bytes `write` puts at the end of the buffer.
    fn append_with(
        &mut self,
        payload_len: usize,
        write: impl FnOnce(&mut Vec<u8>),
    ) -> Result<Location> {
        let frame_len = (FRAME_HEADER_LEN + payload_len) as u64;
        let end = self.written + self.buffer.len() as u64;
        let capacity = segment_capacity(self.segment);
        if end > SEGMENT_HEADER_LEN && end + frame_len > capacity {
            self.roll()?;
        } else if end > capacity / 4 && self.preparing.is_none() {
            self.prepare_next();
        }
        let offset = self.written + self.buffer.len() as u64;
        let start = self.buffer.len();
        self.buffer.extend_from_slice(FRAME_MAGIC);
        // Payloads are bounded by the message size limit (at most 256 MiB), far below 4 GiB.
        self.buffer
            .extend_from_slice(&(payload_len as u32).to_le_bytes());
        self.buffer.extend_from_slice(&[0; 4]);
        write(&mut self.buffer);
        let payload = &self.buffer[start + FRAME_HEADER_LEN..];
        debug_assert_eq!(payload.len(), payload_len);
        let crc = checksum(payload);
        self.buffer[start + 8..start + FRAME_HEADER_LEN].copy_from_slice(&crc.to_le_bytes());
        let location = Location {
            segment: self.segment,
            offset,
            len: frame_len as u32,
        };
        self.last = Some(location);
        Ok(location)
    }

    /// Adds a frame around raw bytes.
    #[cfg(test)]
    pub fn append_raw(&mut self, payload: &[u8]) -> Result<Location> {
        self.append_with(payload.len(), |buffer| buffer.extend_from_slice(payload))
    }

    /// The last frame appended, if any.
    pub fn last(&self) -> Option<Location> {
        self.last
    }

    /// Bytes appended but not yet written out.
    pub fn pending_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// Where the next frame goes.
    #[cfg(test)]
    pub fn end(&self) -> Position {
        Position {
            segment: self.segment,
            offset: self.written + self.buffer.len() as u64,
        }
    }

    /// Writes the pending frames to the file (into the page cache; not yet durable).
    pub fn write_out(&mut self) -> Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        self.log.faults.check(DiskOperation::LogWrite)?;
        self.file.write_all_at(&self.buffer, self.written)?;
        self.written += self.buffer.len() as u64;
        self.buffer.clear();
        if !self.unsynced.iter().any(|f| Arc::ptr_eq(f, &self.file)) {
            self.unsynced.push(self.file.clone());
        }
        Ok(())
    }

    /// The files written since the last call; syncing them makes every written frame durable.
    pub fn files_to_sync(&mut self) -> Vec<Arc<File>> {
        std::mem::take(&mut self.unsynced)
    }

    /// Starts preparing the next segment in the background, unless it exists already.
    fn prepare_next(&mut self) {
        let next = self.segment + 1;
        if self.log.segment(next).is_some() {
            return;
        }
        let dir = self.log.dir.clone();
        let faults = self.log.faults.clone();
        self.preparing = std::thread::Builder::new()
            .name("khabar-segment".into())
            .spawn(move || {
                let prepared = prepare_segment_paced(&dir, next, PREPARE_PAUSE, &faults);
                if let Err(e) = &prepared {
                    warn!(
                        segment = next,
                        error = %e,
                        "preparing the next log segment failed; writes stop when the current one is full unless it can be made then"
                    );
                }
                prepared
            })
            .ok();
    }

    fn roll(&mut self) -> Result<()> {
        self.write_out()?;
        // The closed segment must be durable before anything after it is acknowledged.
        self.file.sync_data()?;
        self.unsynced.retain(|f| !Arc::ptr_eq(f, &self.file));
        let next = self.segment + 1;
        // A preparation that failed in the background (a full disk, say) is tried once more.
        let prepared = self
            .preparing
            .take()
            .and_then(|preparing| preparing.join().ok())
            .and_then(Result::ok);
        self.file = match (self.log.segment(next), prepared) {
            (Some(file), _) => file,
            (None, Some(file)) => self.log.add_segment(next, file),
            (None, None) => self.log.add_segment(
                next,
                prepare_segment(&self.log.dir, next, &self.log.faults)?,
            ),
        };
        self.segment = next;
        self.written = SEGMENT_HEADER_LEN;
        Ok(())
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        if let Some(preparing) = self.preparing.take() {
            // A segment prepared for nothing is harmless; one left half made would be removed at
            // the next start. Waiting keeps the directory tidy when the store closes.
            let _ = preparing.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(log: &Arc<Log>, end: Position, payloads: &[&[u8]]) -> (Vec<Location>, Position) {
        let mut writer = log.writer(end).unwrap();
        let locations = payloads
            .iter()
            .map(|p| writer.append_raw(p).unwrap())
            .collect();
        writer.write_out().unwrap();
        for file in writer.files_to_sync() {
            file.sync_data().unwrap();
        }
        (locations, writer.end())
    }

    fn recover_all(log: &Log) -> (Vec<Vec<u8>>, Recovered) {
        let mut seen = Vec::new();
        let recovered = log
            .recover(None, |_, payload| {
                seen.push(payload.to_vec());
                Ok(())
            })
            .unwrap();
        (seen, recovered)
    }

    #[test]
    fn frames_round_trip_through_files() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let (locations, end) = write(&log, Position::START, &[b"one", "اثنان".as_bytes(), b"3"]);
        assert_eq!(log.read(locations[1]).unwrap(), "اثنان".as_bytes());
        let (more, end) = write(&log, end, &[b"four"]);
        assert_eq!(more[0].offset, locations[2].end().offset);

        drop(log);
        let log = Log::open(dir.path()).unwrap();
        let (seen, recovered) = recover_all(&log);
        assert_eq!(
            seen,
            [&b"one"[..], "اثنان".as_bytes(), b"3", b"four"].map(<[u8]>::to_vec)
        );
        assert_eq!((recovered.end, recovered.truncated), (end, None));

        let mut from_second = Vec::new();
        log.read_from(locations[1].end(), |location, payload| {
            from_second.push((location, payload.to_vec()));
            Ok(true)
        })
        .unwrap();
        assert_eq!(from_second[0], (locations[2], b"3".to_vec()));
        assert_eq!(from_second[1].1, b"four");
    }

    #[test]
    fn segments_roll_when_full_and_reads_cross_them() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let big = vec![7u8; (segment_capacity(1) * 3 / 8) as usize];
        let (locations, _) = write(&log, Position::START, &[&big, &big, &big, b"last"]);
        assert_eq!(
            locations.iter().map(|l| l.segment).collect::<Vec<_>>(),
            [1, 1, 2, 2]
        );
        assert_eq!(log.segment_range(), Some((1, 2)));
        for (segment, size) in [(1, 4 << 20), (2, 8 << 20)] {
            let path = dir.path().join(segment_name(segment));
            assert_eq!(std::fs::metadata(path).unwrap().len(), size);
        }
        let mut segments = Vec::new();
        log.read_from(Position::START, |location, _| {
            segments.push(location.segment);
            Ok(true)
        })
        .unwrap();
        assert_eq!(segments, [1, 1, 2, 2]);
        let mut recovered = Vec::new();
        log.recover(None, |location, _| {
            recovered.push(location);
            Ok(())
        })
        .unwrap();
        assert_eq!(recovered, locations);
    }

    #[test]
    fn segments_grow_to_the_target_size() {
        assert_eq!(segment_capacity(1), 4 << 20);
        assert_eq!(segment_capacity(2), 8 << 20);
        assert_eq!(segment_capacity(5), SEGMENT_TARGET_BYTES);
        assert_eq!(segment_capacity(1_000), SEGMENT_TARGET_BYTES);
    }

    #[test]
    fn a_torn_tail_is_zeroed_at_every_cut() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let (locations, _) = write(&log, Position::START, &[b"first record", b"second record"]);
        drop(log);
        let path = dir.path().join(segment_name(1));
        let whole = std::fs::read(&path).unwrap();
        let last = locations[1];
        let (from, to) = (last.offset as usize, last.end().offset as usize);
        for cut in from..to {
            // The write stopped at `cut`: either the file ends there (an append), or the rest of
            // the prepared space is still zeros.
            let mut zeroed = whole.clone();
            zeroed[cut..to].fill(0);
            for torn in [whole[..cut].to_vec(), zeroed] {
                std::fs::write(&path, &torn).unwrap();
                let log = Log::open(dir.path()).unwrap();
                let (seen, recovered) = recover_all(&log);
                assert_eq!(seen, [b"first record".to_vec()], "cut at {cut}");
                assert_eq!(recovered.end, last.position());
                let written = whole[from..cut].iter().rposition(|b| *b != 0);
                assert_eq!(recovered.truncated, written.map(|i| i as u64 + 1));
                let after = std::fs::read(&path).unwrap();
                assert_eq!(after.len(), torn.len(), "the file keeps its size");
                assert!(after[from..].iter().all(|b| *b == 0), "cut at {cut}");
                assert_eq!(after[..from], whole[..from]);
            }
        }
    }

    #[test]
    fn damage_before_the_tail_stops_recovery_with_file_and_offset() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let (locations, _) = write(&log, Position::START, &[b"first record", b"second record"]);
        drop(log);
        let path = dir.path().join(segment_name(1));
        let mut bytes = std::fs::read(&path).unwrap();
        let flipped = locations[0].offset as usize + FRAME_HEADER_LEN + 3;
        bytes[flipped] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let log = Log::open(dir.path()).unwrap();
        let err = log.recover(None, |_, _| Ok(())).unwrap_err();
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(
            text.contains(&format!("offset {}", locations[0].offset)),
            "{text}"
        );
        assert!(text.contains("checksum"), "{text}");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            bytes,
            "nothing is removed on damage"
        );
        let read = log.read(locations[0]).unwrap_err();
        assert!(read.to_string().contains("checksum"), "{read}");
    }

    #[test]
    fn foreign_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(segment_name(1)), b"PK\x03\x04 a zip file").unwrap();
        let err = Log::open(dir.path()).err().expect("refused");
        assert!(
            err.to_string().contains("not a khabar log segment"),
            "{err}"
        );
    }

    #[test]
    fn an_index_ahead_of_the_log_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let (locations, _) = write(&log, Position::START, &[b"only", b"second"]);
        let recovered = log.recover(Some(locations[0]), |_, _| Ok(())).unwrap();
        assert_eq!(recovered.last, Some(locations[1]));
        let beyond = Location {
            segment: 1,
            offset: locations[1].end().offset + 100,
            len: 20,
        };
        let later_segment = Location {
            segment: 3,
            offset: SEGMENT_HEADER_LEN,
            len: 20,
        };
        for applied in [beyond, later_segment] {
            let err = log.recover(Some(applied), |_, _| Ok(())).unwrap_err();
            assert!(
                err.to_string().contains("acknowledged writes are missing"),
                "{err}"
            );
        }
        // A flipped bit in the last applied record is noticed too.
        let path = dir.path().join(segment_name(1));
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[locations[1].offset as usize + FRAME_HEADER_LEN] ^= 1;
        std::fs::write(&path, bytes).unwrap();
        let log = Log::open(dir.path()).unwrap();
        let err = log.recover(Some(locations[1]), |_, _| Ok(())).unwrap_err();
        assert!(err.to_string().contains("checksum"), "{err}");
    }
}
