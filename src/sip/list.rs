//! Every element of a comma-separated header list (RFC 3261 §7.3.1: a
//! list header may be split over several fields, and any field may hold
//! several values), as spans of the message buffer, in order. Via, Route,
//! Record-Route, Contact, Path and the option-tag lists all walk this.

use super::error::Error;
use super::header::HeaderName;
use super::lex::CommaSplit;
use super::message::{Message, Span};

/// Iterator over the elements of every field named `name`. An element
/// may be empty (`a,,b`); callers decide whether that is an error. A quote
/// or `<` left open yields one `BadHeader(name)` and ends the iteration.
pub struct ListValues<'a> {
    msg: &'a Message,
    name: HeaderName,
    /// The next field to look at.
    field: usize,
    /// The field being split: where its value starts, and the splitter.
    split: Option<(usize, CommaSplit<'a>)>,
}

impl Iterator for ListValues<'_> {
    type Item = Result<Span, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some((base, split)) = &mut self.split {
                match split.next() {
                    Some(Ok(r)) => return Some(Ok(Span::new(*base + r.start, *base + r.end))),
                    Some(Err(())) => {
                        self.split = None;
                        self.field = usize::MAX;
                        return Some(Err(Error::BadHeader(self.name)));
                    }
                    None => self.split = None,
                }
            }
            let fields = self.msg.fields();
            let f = self.field
                + fields
                    .get(self.field..)?
                    .iter()
                    .position(|f| f.name == self.name)?;
            self.field = f + 1;
            let value = fields[f].value;
            self.split = Some((value.start as usize, CommaSplit::new(self.msg.slice(value))));
        }
    }
}

impl Message {
    /// Every element of the list header `name`, across all its fields.
    pub fn list_values(&self, name: HeaderName) -> ListValues<'_> {
        ListValues {
            msg: self,
            name,
            field: 0,
            split: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::sip::{Error, Framing, HeaderName, Limits, Message};
    use bytes::Bytes;

    #[test]
    fn elements_across_fields_in_order() {
        let s = "OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@b>\r\nFrom: <sip:c@d>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nRoute: <sip:a;lr>, \"x,y\" <sip:b;lr>\r\nX: 1\r\nRoute: <sip:c,d>,,\r\nSupported: \"open\r\n\r\n";
        let m = Message::parse(Bytes::from(s), Framing::Datagram, &Limits::default()).unwrap();
        let r: Vec<_> = m
            .list_values(HeaderName::Route)
            .map(|r| m.slice(r.unwrap()).to_vec())
            .collect();
        assert_eq!(
            r,
            [
                &b"<sip:a;lr>"[..],
                b"\"x,y\" <sip:b;lr>",
                b"<sip:c,d>",
                b"",
                b""
            ]
        );
        let bad: Vec<_> = m.list_values(HeaderName::Supported).collect();
        assert_eq!(bad, [Err(Error::BadHeader(HeaderName::Supported))]);
        assert_eq!(m.list_values(HeaderName::Contact).count(), 0);
    }
}
