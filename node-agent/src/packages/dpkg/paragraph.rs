//! Paragraphs (dpkg's stanzas) of a status or journal file, read as dpkg's `parse_stanza` reads
//! them: fields, continuation lines and the line each starts on, not yet what they mean.

use std::collections::HashSet;

use super::{DpkgError, Limits, check_text, shown};

/// One field of a paragraph.
pub(super) struct Field<'a> {
    name: &'a [u8],
    /// From the first non-blank byte after the colon to the end of the last continuation line,
    /// trailing blanks trimmed. Continuation lines keep their `\n` and leading blank, so the
    /// value's lines are the file's lines from `line` on.
    pub(super) value: &'a [u8],
    pub(super) line: usize,
}

/// A paragraph (dpkg's "stanza") and the line it starts on.
pub(super) struct Paragraph<'a> {
    pub(super) line: usize,
    fields: Vec<Field<'a>>,
}

impl<'a> Paragraph<'a> {
    pub(super) fn get(&self, name: &str) -> Option<&Field<'a>> {
        self.fields
            .iter()
            .find(|field| field.name.eq_ignore_ascii_case(name.as_bytes()))
    }
}

/// A field while its continuation lines are read: offsets of its value in the file.
struct OpenField<'a> {
    name: &'a [u8],
    line: usize,
    start: usize,
    end: usize,
}

/// Reads paragraphs as dpkg's `parse_stanza` does: blank lines separate them; a field is
/// `Name: value` (spaces allowed before the colon), continued by lines starting with a space or
/// tab; a continuation line of blanks only is an error, and so is a field given twice.
pub(super) struct ParagraphReader<'a> {
    bytes: &'a [u8],
    /// The start of the next line.
    pos: usize,
    /// The number of the next line.
    line: usize,
    max_field_bytes: usize,
}

impl<'a> ParagraphReader<'a> {
    pub(super) fn new(bytes: &'a [u8], limits: &Limits) -> Result<Self, DpkgError> {
        check_text(bytes)?;
        Ok(Self {
            bytes,
            pos: 0,
            line: 1,
            max_field_bytes: limits.max_field_bytes,
        })
    }

    pub(super) fn next_paragraph(&mut self) -> Result<Option<Paragraph<'a>>, DpkgError> {
        while self.bytes.get(self.pos) == Some(&b'\n') {
            self.pos += 1;
            self.line += 1;
        }
        if self.pos >= self.bytes.len() {
            return Ok(None);
        }
        let mut paragraph: Paragraph<'a> = Paragraph {
            line: self.line,
            fields: Vec::new(),
        };
        let mut seen: HashSet<Vec<u8>> = HashSet::new();
        let mut open: Option<OpenField<'a>> = None;
        // Each line here is non-empty: the loop stops before a blank line or the end.
        loop {
            let start: usize = self.pos;
            let (text, line) = self.take_line();
            if let Some(b' ' | b'\t') = text.first() {
                let Some(field) = open.as_mut() else {
                    return Err(DpkgError::ContinuationWithoutField { line });
                };
                if text.iter().all(|&byte| is_blank(byte)) {
                    return Err(DpkgError::BlankContinuation {
                        line,
                        field: shown(field.name),
                    });
                }
                field.end = start + text.len();
            } else {
                if let Some(field) = open.take() {
                    paragraph.fields.push(self.close(field));
                }
                open = Some(self.open_field(text, start, line, &mut seen)?);
            }
            if let Some(field) = &open
                && field.end.saturating_sub(field.start) > self.max_field_bytes
            {
                return Err(DpkgError::FieldTooLong {
                    line: field.line,
                    field: shown(field.name),
                    limit: self.max_field_bytes,
                });
            }
            if matches!(self.bytes.get(self.pos), None | Some(b'\n')) {
                break;
            }
        }
        if let Some(field) = open {
            paragraph.fields.push(self.close(field));
        }
        Ok(Some(paragraph))
    }

    /// The next line without its newline, and its number.
    fn take_line(&mut self) -> (&'a [u8], usize) {
        let bytes: &'a [u8] = self.bytes;
        let rest: &'a [u8] = bytes.get(self.pos..).unwrap_or_default();
        let text: &'a [u8] = rest.split(|&byte| byte == b'\n').next().unwrap_or_default();
        let line: usize = self.line;
        self.pos += text.len() + 1;
        self.line += 1;
        (text, line)
    }

    /// Starts a field from its first line, which starts at offset `start` of the file.
    fn open_field(
        &self,
        text: &'a [u8],
        start: usize,
        line: usize,
        seen: &mut HashSet<Vec<u8>>,
    ) -> Result<OpenField<'a>, DpkgError> {
        let not_a_field = || DpkgError::NotAField {
            line,
            text: shown(text),
        };
        let name_len: usize = text
            .iter()
            .position(|&byte| byte == b':' || byte.is_ascii_whitespace())
            .unwrap_or(text.len());
        let name: &'a [u8] = text.get(..name_len).unwrap_or_default();
        let after_name: &'a [u8] = trim_start_blanks(text.get(name_len..).unwrap_or_default());
        let Some((b':', value)) = after_name.split_first() else {
            return Err(not_a_field());
        };
        if name.is_empty() {
            return Err(not_a_field());
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(DpkgError::DuplicateField {
                line,
                field: shown(name),
            });
        }
        let value: &'a [u8] = trim_start_blanks(value);
        Ok(OpenField {
            name,
            line,
            start: start + (text.len() - value.len()),
            end: start + text.len(),
        })
    }

    fn close(&self, field: OpenField<'a>) -> Field<'a> {
        let bytes: &'a [u8] = self.bytes;
        let value: &'a [u8] = bytes.get(field.start..field.end).unwrap_or_default();
        let trimmed_len: usize = value
            .iter()
            .rposition(|&byte| !is_blank(byte))
            .map_or(0, |last| last + 1);
        Field {
            name: field.name,
            value: value.get(..trimmed_len).unwrap_or_default(),
            line: field.line,
        }
    }
}

fn is_blank(byte: u8) -> bool {
    byte == b' ' || byte == b'\t'
}

fn trim_start_blanks(text: &[u8]) -> &[u8] {
    let start: usize = text
        .iter()
        .position(|&byte| !is_blank(byte))
        .unwrap_or(text.len());
    text.get(start..).unwrap_or_default()
}
