//! The Python worker's frames: how a node and its warm `python/mesh/_worker.py` processes
//! talk over the worker's stdin and stdout (`docs/python.md`, "The worker frames").
//!
//! # Spec
//! A frame is one kind byte, a 4-byte big-endian length, then that many bytes:
//!
//! | kind | from | body |
//! |---|---|---|
//! | `T` ([`TASK`]) | node | the job's 32-byte code id, then the task's payload (pickled arguments) |
//! | `C` ([`CODE`]) | node | the code id, then the code blob |
//! | `N` ([`NO_CODE`]) | worker | empty: it lacks the code of the `T` it got; the node sends `C` and the same `T` again |
//! | `R` ([`RESULT`]) | worker | a status byte, a 4-byte big-endian length, that many bytes of value, then what the task printed |
//!
//! The status of an `R` is 0 (the function returned the value, pickled), 1 (it raised
//! the pickled exception) or 2 (the task could not be set up; the value is a UTF-8
//! message). A worker's frames are at most [`MAX_FRAME`] bytes; anything else from a
//! worker (an unknown kind, a longer frame, an `R` cut short, another status) is a
//! [`FrameError`], and the node ends that worker.

/// A task for the worker.
pub(crate) const TASK: u8 = b'T';
/// A job's code, after the worker asked for it.
pub(crate) const CODE: u8 = b'C';
/// The worker lacks the code of the task it got.
pub(crate) const NO_CODE: u8 = b'N';
/// The worker's result for a task.
pub(crate) const RESULT: u8 = b'R';

/// The longest frame a worker may send: a value of at most `store::MAX_BLOB`, plus its
/// output and header.
pub(crate) const MAX_FRAME: usize = (crate::store::MAX_BLOB as usize) + (1 << 20);

/// How a worker broke the frames.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame of {0} bytes")]
    TooLong(usize),
    #[error("a frame of kind {0}")]
    UnknownKind(u8),
    #[error("a result frame cut short")]
    CutShort,
    #[error("a result of status {0}")]
    UnknownStatus(u8),
    #[error("it asked for the same code twice")]
    CodeTwice,
}

/// What a worker answered for a task (an `R` frame's body).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    Returned {
        value: Vec<u8>,
        output: Vec<u8>,
    },
    Raised {
        value: Vec<u8>,
        output: Vec<u8>,
    },
    /// It could not set the task up; a message for the user.
    Setup(String),
}

/// A frame's 5-byte header.
pub(crate) fn head(kind: u8, len: usize) -> Result<[u8; 5], FrameError> {
    let len = u32::try_from(len).map_err(|_| FrameError::TooLong(len))?;
    let mut head = [kind, 0, 0, 0, 0];
    head[1..].copy_from_slice(&len.to_be_bytes());
    Ok(head)
}

/// A worker's frame header: its kind and body length, checked against [`MAX_FRAME`].
pub(crate) fn parse_head(head: [u8; 5]) -> Result<(u8, usize), FrameError> {
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(FrameError::TooLong(len));
    }
    Ok((head[0], len))
}

/// An `R` frame's body.
pub(crate) fn parse_result(body: &[u8]) -> Result<Answer, FrameError> {
    let status = *body.first().ok_or(FrameError::CutShort)?;
    let len = body.get(1..5).ok_or(FrameError::CutShort)?;
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    let value = body.get(5..5 + len).ok_or(FrameError::CutShort)?.to_vec();
    let output = body[5 + len..].to_vec();
    match status {
        0 => Ok(Answer::Returned { value, output }),
        1 => Ok(Answer::Raised { value, output }),
        2 => Ok(Answer::Setup(String::from_utf8_lossy(&value).into_owned())),
        s => Err(FrameError::UnknownStatus(s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip_and_long_frames_are_refused() {
        assert_eq!(head(TASK, 258).unwrap(), [b'T', 0, 0, 1, 2]);
        assert_eq!(parse_head([b'R', 0, 0, 1, 2]).unwrap(), (RESULT, 258));
        assert_eq!(parse_head(head(RESULT, MAX_FRAME + 1).unwrap()), Err(FrameError::TooLong(MAX_FRAME + 1)));
    }

    #[test]
    fn result_bodies_parse_and_damaged_ones_are_errors() {
        let body = [&[1u8, 0, 0, 0, 2][..], b"ex", b"printed"].concat();
        assert_eq!(parse_result(&body).unwrap(), Answer::Raised { value: b"ex".to_vec(), output: b"printed".to_vec() });
        assert_eq!(parse_result(&[2, 0, 0, 0, 2, b'n', b'o']).unwrap(), Answer::Setup("no".into()));
        assert_eq!(parse_result(&[0, 0, 0, 0, 9, 1]), Err(FrameError::CutShort));
        assert_eq!(parse_result(&[]), Err(FrameError::CutShort));
        assert_eq!(parse_result(&[7, 0, 0, 0, 0]), Err(FrameError::UnknownStatus(7)));
    }
}
