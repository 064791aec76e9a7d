//! Field types that read any JSON value and keep it only when it has the expected type.
//!
//! The report reads events from older and newer pacstap versions and from files it did not
//! write (docs/events.md: consumers ignore what they do not know, fields may be absent), so a
//! field of the wrong type must read as absent, not fail the whole line, as it did when every
//! event was a `serde_json::Value`. These wrappers give the typed structs of [`crate::ev`] that
//! behaviour without building a tree: strings are borrowed from the line when they have no
//! escapes, and a value of another type is skipped with `IgnoredAny` (no allocation).
//!
//! serde's own `Cow<str>` always copies; `#[serde(borrow)]` does not reach inside `Option`:
//! hence the small visitors here.

use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// A string field: `Some` only for a JSON string (borrowed when it has no escapes).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Str<'a>(pub Option<Cow<'a, str>>);

impl<'a> Str<'a> {
    /// The string, `None` when absent, of another type or empty (as `Ev::s` always read).
    pub fn get(&self) -> Option<&str> {
        self.0.as_deref().filter(|s| !s.is_empty())
    }
}

/// Skips any value with the visitor's default for it: every `visit_*` that is not overridden
/// returns `$none`; maps and sequences are consumed with `IgnoredAny`.
macro_rules! skip_others {
    ($none:expr) => {
        fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_none<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Self::Value, A::Error> {
            while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok($none)
        }
    };
}

macro_rules! skip_scalars_and_seq {
    ($none:expr) => {
        fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
            while s.next_element::<IgnoredAny>()?.is_some() {}
            Ok($none)
        }
    };
}

macro_rules! skip_str_and_u64 {
    ($none:expr) => {
        fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}

struct StrVisitor;

impl<'de> Visitor<'de> for StrVisitor {
    type Value = Str<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Str<'de>, E> {
        Ok(Str(Some(Cow::Borrowed(v))))
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Str<'de>, E> {
        Ok(Str(Some(Cow::Owned(v.to_string()))))
    }
    fn visit_string<E: serde::de::Error>(self, v: String) -> Result<Str<'de>, E> {
        Ok(Str(Some(Cow::Owned(v))))
    }
    fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Str<'de>, E> {
        Ok(Str(None))
    }
    skip_others!(Str(None));
    skip_scalars_and_seq!(Str(None));
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrVisitor)
    }
}

/// An unsigned integer field: `Some` only for a JSON number that is a non-negative integer
/// (as `Value::as_u64`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Num(pub Option<u64>);

struct NumVisitor;

impl<'de> Visitor<'de> for NumVisitor {
    type Value = Num;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Num, E> {
        Ok(Num(Some(v)))
    }
    fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<Num, E> {
        Ok(Num(None))
    }
    skip_others!(Num(None));
    skip_scalars_and_seq!(Num(None));
}

impl<'de> Deserialize<'de> for Num {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumVisitor)
    }
}

/// A field that is a string in some events and a number in others (`status`: a DIMSE status
/// string in `dicom`, an HTTP status number in `http`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StrOrNum<'a> {
    pub s: Str<'a>,
    pub n: Num,
}

struct StrOrNumVisitor;

impl<'de> Visitor<'de> for StrOrNumVisitor {
    type Value = StrOrNum<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(StrOrNum {
            s: Str(Some(Cow::Borrowed(v))),
            n: Num(None),
        })
    }
    fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(StrOrNum {
            s: Str(Some(Cow::Owned(v.to_string()))),
            n: Num(None),
        })
    }
    fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(StrOrNum {
            s: Str(None),
            n: Num(Some(v)),
        })
    }
    skip_others!(StrOrNum::default());
    skip_scalars_and_seq!(StrOrNum::default());
}

impl<'de: 'a, 'a> Deserialize<'de> for StrOrNum<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrOrNumVisitor)
    }
}

/// A boolean field: `Some` only for `true` / `false`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Bool(pub Option<bool>);

struct BoolVisitor;

impl<'de> Visitor<'de> for BoolVisitor {
    type Value = Bool;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Bool, E> {
        Ok(Bool(Some(v)))
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Bool, E> {
        Ok(Bool(None))
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Bool, E> {
        Ok(Bool(None))
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Bool, E> {
        Ok(Bool(None))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut m: A) -> Result<Bool, A::Error> {
        while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Bool(None))
    }
    skip_str_and_u64!(Bool(None));
    skip_scalars_and_seq!(Bool(None));
}

impl<'de> Deserialize<'de> for Bool {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(BoolVisitor)
    }
}

/// Whether the key is present at all (any value, `null` included, as `Value::get().is_some()`).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Present(pub bool);

impl<'de> Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        IgnoredAny::deserialize(d)?;
        Ok(Present(true))
    }
}

/// An array of strings: its string elements in order (others skipped); not an array: empty.
/// `len` counts every element, of any type.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct StrList<'a> {
    pub items: Vec<Cow<'a, str>>,
    pub len: usize,
}

struct StrListVisitor;

impl<'de> Visitor<'de> for StrListVisitor {
    type Value = StrList<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        let mut out = StrList::default();
        while let Some(Str(v)) = s.next_element::<Str<'de>>()? {
            out.len += 1;
            if let Some(v) = v {
                out.items.push(v);
            }
        }
        Ok(out)
    }
    skip_str_and_u64!(StrList::default());
    skip_others!(StrList::default());
}

impl<'de: 'a, 'a> Deserialize<'de> for StrList<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrListVisitor)
    }
}

/// An array of unsigned integers: those elements (others skipped); not an array: empty.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct NumList(pub Vec<u64>);

struct NumListVisitor;

impl<'de> Visitor<'de> for NumListVisitor {
    type Value = NumList;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut s: A) -> Result<Self::Value, A::Error> {
        let mut out = Vec::new();
        while let Some(Num(v)) = s.next_element::<Num>()? {
            out.extend(v);
        }
        Ok(NumList(out))
    }
    skip_str_and_u64!(NumList::default());
    skip_others!(NumList::default());
}

impl<'de> Deserialize<'de> for NumList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NumListVisitor)
    }
}

/// A nested object read as `T` when it is an object; present with another type (or `null`):
/// `present` only, `T::default()`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Obj<T> {
    pub present: bool,
    pub v: T,
}

struct ObjVisitor<T>(std::marker::PhantomData<T>);

impl<'de, T: Deserialize<'de> + Default> Visitor<'de> for ObjVisitor<T> {
    type Value = Obj<T>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_map<A: MapAccess<'de>>(self, m: A) -> Result<Self::Value, A::Error> {
        Ok(Obj {
            present: true,
            v: T::deserialize(serde::de::value::MapAccessDeserializer::new(m))?,
        })
    }
    fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Obj::other())
    }
    fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(Obj::other())
    }
    fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Obj::other())
    }
    fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
        Ok(Obj::other())
    }
    skip_str_and_u64!(Obj::other());
    skip_scalars_and_seq!(Obj::other());
}

impl<T: Default> Obj<T> {
    fn other() -> Self {
        Obj {
            present: true,
            v: T::default(),
        }
    }
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Obj<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ObjVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Default, Debug)]
    #[serde(default)]
    struct T<'a> {
        #[serde(borrow)]
        s: Str<'a>,
        n: Num,
        #[serde(borrow)]
        sn: StrOrNum<'a>,
        b: Bool,
        p: Present,
        #[serde(borrow)]
        l: StrList<'a>,
        nl: NumList,
        o: Obj<Inner>,
    }

    #[derive(serde::Deserialize, Default, Debug, PartialEq)]
    #[serde(default)]
    struct Inner {
        n: Num,
    }

    #[test]
    fn each_field_keeps_only_its_type_and_borrows_plain_strings() {
        let text = r#"{"s":"plain","n":7,"sn":200,"b":true,"p":null,"l":["a",1,"b\n",{}],"nl":[1,-2,"x",3.5,4],"o":{"n":9,"z":[1]},"x":{"deep":[1,{"a":2}]}}"#;
        let t: T = serde_json::from_str(text).unwrap();
        assert!(matches!(t.s.0, Some(Cow::Borrowed("plain"))));
        assert_eq!(t.n, Num(Some(7)));
        assert_eq!((t.sn.s.get(), t.sn.n), (None, Num(Some(200))));
        assert_eq!(t.b, Bool(Some(true)));
        assert!(t.p.0, "null is present");
        assert_eq!(t.l.items, ["a", "b\n"]);
        assert_eq!(t.l.len, 4);
        assert_eq!(t.nl.0, [1, 4]);
        assert_eq!((t.o.present, t.o.v.n), (true, Num(Some(9))));
    }

    #[test]
    fn wrong_types_read_as_absent_not_as_an_error() {
        let text = r#"{"s":{"a":1},"n":-1,"sn":[1],"b":"yes","l":"x","nl":{"a":1},"o":"str"}"#;
        let t: T = serde_json::from_str(text).unwrap();
        assert_eq!(t.s.get(), None);
        assert_eq!(t.n, Num(None));
        assert_eq!(t.sn, StrOrNum::default());
        assert_eq!(t.b, Bool(None));
        assert!(!t.p.0);
        assert!(t.l.items.is_empty());
        assert!(t.nl.0.is_empty());
        assert_eq!((t.o.present, t.o.v), (true, Inner::default()));
        let empty: T = serde_json::from_str(r#"{"s":"","n":1.5}"#).unwrap();
        assert_eq!(empty.s.get(), None, "an empty string reads as absent");
        assert_eq!(empty.n, Num(None));
    }
}
