//! A census of the parse tree, independent of the walker: every relation
//! reference (RangeVar), function call (FuncCall), column reference
//! (ColumnRef), operator (A_Expr), bind parameter (ParamRef) and field
//! selection (A_Indirection, which may be a function call) anywhere in the tree, by source
//! position. It goes through the tree generically (serde's view of the
//! protobuf structs, which covers every field of every node), so a node the
//! walker never reached still counts. The classifier refuses a statement when
//! the census finds anything the walker did not account for: a gap in the
//! walker fails closed instead of letting a name through unchecked.

use serde::ser::{self, Serialize};

/// The node kinds the census counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// A relation reference.
    Relation,
    /// A function call.
    Function,
    /// A column reference.
    Column,
    /// An operator expression.
    Operator,
    /// A bind parameter (`$1`).
    Parameter,
    /// A field selection `(expr).name`, which may be a function call (it
    /// has no source position: all count as one place).
    Indirection,
}

impl Kind {
    fn of(struct_name: &str) -> Option<Kind> {
        match struct_name {
            "RangeVar" => Some(Kind::Relation),
            "FuncCall" => Some(Kind::Function),
            "ColumnRef" => Some(Kind::Column),
            "AExpr" => Some(Kind::Operator),
            "ParamRef" => Some(Kind::Parameter),
            _ => None,
        }
    }

    /// What the kind is called in messages.
    pub fn describe(self) -> &'static str {
        match self {
            Kind::Relation => "relation",
            Kind::Function => "function call",
            Kind::Column => "column reference",
            Kind::Operator => "operator",
            Kind::Parameter => "parameter",
            Kind::Indirection => "field selection",
        }
    }
}

/// Every counted node of `tree`, as (kind, source position), sorted.
pub fn census<T: Serialize>(tree: &T) -> Vec<(Kind, i32)> {
    let mut c = Census::default();
    // The census cannot fail: it accepts every serde shape.
    let _ = tree.serialize(&mut c);
    c.found.sort_unstable();
    c.found
}

#[derive(Default)]
struct Census {
    found: Vec<(Kind, i32)>,
    /// For each struct being serialized: its kind, when counted.
    frames: Vec<Option<Kind>>,
}

#[derive(Debug)]
struct Never;

impl std::fmt::Display for Never {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("census error")
    }
}
impl std::error::Error for Never {}
impl ser::Error for Never {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Never
    }
}

type R = Result<(), Never>;

macro_rules! ignore_scalars {
    ($($f:ident: $t:ty),*) => {
        $(fn $f(self, _: $t) -> R { Ok(()) })*
    };
}

impl ser::Serializer for &mut Census {
    type Ok = ();
    type Error = Never;
    type SerializeSeq = Self;
    type SerializeTuple = Self;
    type SerializeTupleStruct = Self;
    type SerializeTupleVariant = Self;
    type SerializeMap = Self;
    type SerializeStruct = Self;
    type SerializeStructVariant = Self;

    // Scalars carry no node: nothing to count.
    ignore_scalars!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16,
        serialize_i32: i32, serialize_i64: i64, serialize_u8: u8, serialize_u16: u16,
        serialize_u32: u32, serialize_u64: u64, serialize_f32: f32, serialize_f64: f64,
        serialize_char: char, serialize_str: &str, serialize_bytes: &[u8]);
    fn serialize_none(self) -> R {
        Ok(())
    }
    fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> R {
        v.serialize(self)
    }
    fn serialize_unit(self) -> R {
        Ok(())
    }
    fn serialize_unit_struct(self, _: &'static str) -> R {
        Ok(())
    }
    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> R {
        Ok(())
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, v: &T) -> R {
        v.serialize(self)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        v: &T,
    ) -> R {
        v.serialize(self)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self, Never> {
        Ok(self)
    }
    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Self, Never> {
        if name == "AIndirection" {
            self.found.push((Kind::Indirection, -1));
        }
        self.frames.push(Kind::of(name));
        Ok(self)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self, Never> {
        self.frames.push(None);
        Ok(self)
    }
}

/// Sequences and tuples: every element is walked.
macro_rules! walk_elements {
    ($($t:ident :: $m:ident),*) => {
        $(impl ser::$t for &mut Census {
            type Ok = ();
            type Error = Never;
            fn $m<T: ?Sized + Serialize>(&mut self, v: &T) -> R {
                v.serialize(&mut **self)
            }
            fn end(self) -> R {
                Ok(())
            }
        })*
    };
}

walk_elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for &mut Census {
    type Ok = ();
    type Error = Never;
    fn serialize_key<T: ?Sized + Serialize>(&mut self, k: &T) -> R {
        k.serialize(&mut **self)
    }
    fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> R {
        v.serialize(&mut **self)
    }
    fn end(self) -> R {
        Ok(())
    }
}

impl ser::SerializeStruct for &mut Census {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, key: &'static str, v: &T) -> R {
        if key == "location" {
            if let Some(Some(kind)) = self.frames.last() {
                let kind = *kind;
                if let Some(at) = v.serialize(Location).ok().flatten() {
                    self.found.push((kind, at));
                }
                return Ok(());
            }
        }
        v.serialize(&mut **self)
    }
    fn end(self) -> R {
        self.frames.pop();
        Ok(())
    }
}

impl ser::SerializeStructVariant for &mut Census {
    type Ok = ();
    type Error = Never;
    fn serialize_field<T: ?Sized + Serialize>(&mut self, _: &'static str, v: &T) -> R {
        v.serialize(&mut **self)
    }
    fn end(self) -> R {
        self.frames.pop();
        Ok(())
    }
}

/// Reads one `location` field (an i32).
struct Location;

macro_rules! not_a_location {
    ($($f:ident: $t:ty),*) => {
        $(fn $f(self, _: $t) -> Result<Option<i32>, Never> { Ok(None) })*
    };
}

impl ser::Serializer for Location {
    type Ok = Option<i32>;
    type Error = Never;
    type SerializeSeq = ser::Impossible<Option<i32>, Never>;
    type SerializeTuple = ser::Impossible<Option<i32>, Never>;
    type SerializeTupleStruct = ser::Impossible<Option<i32>, Never>;
    type SerializeTupleVariant = ser::Impossible<Option<i32>, Never>;
    type SerializeMap = ser::Impossible<Option<i32>, Never>;
    type SerializeStruct = ser::Impossible<Option<i32>, Never>;
    type SerializeStructVariant = ser::Impossible<Option<i32>, Never>;

    fn serialize_i32(self, v: i32) -> Result<Option<i32>, Never> {
        Ok(Some(v))
    }
    not_a_location!(serialize_bool: bool, serialize_i8: i8, serialize_i16: i16, serialize_i64: i64,
        serialize_u8: u8, serialize_u16: u16, serialize_u32: u32, serialize_u64: u64,
        serialize_f32: f32, serialize_f64: f64, serialize_char: char, serialize_str: &str,
        serialize_bytes: &[u8], serialize_unit_struct: &'static str);
    fn serialize_none(self) -> Result<Option<i32>, Never> {
        Ok(None)
    }
    fn serialize_some<T: ?Sized + Serialize>(self, _: &T) -> Result<Option<i32>, Never> {
        Ok(None)
    }
    fn serialize_unit(self) -> Result<Option<i32>, Never> {
        Ok(None)
    }
    fn serialize_unit_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
    ) -> Result<Option<i32>, Never> {
        Ok(None)
    }
    fn serialize_newtype_struct<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: &T,
    ) -> Result<Option<i32>, Never> {
        Ok(None)
    }
    fn serialize_newtype_variant<T: ?Sized + Serialize>(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: &T,
    ) -> Result<Option<i32>, Never> {
        Ok(None)
    }
    fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq, Never> {
        Err(Never)
    }
    fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple, Never> {
        Err(Never)
    }
    fn serialize_tuple_struct(
        self,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleStruct, Never> {
        Err(Never)
    }
    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeTupleVariant, Never> {
        Err(Never)
    }
    fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap, Never> {
        Err(Never)
    }
    fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct, Never> {
        Err(Never)
    }
    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        _: &'static str,
        _: usize,
    ) -> Result<Self::SerializeStructVariant, Never> {
        Err(Never)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_every_relation_function_and_column() {
        let sql = "SELECT a, f(b) FROM t JOIN u ON t.x = u.y WHERE EXISTS (SELECT 1 FROM LATERAL g(t.*) AS s)";
        let tree = pg_query::parse(sql, 0).unwrap().protobuf;
        let found = census(&tree);
        let count = |k| found.iter().filter(|(kind, _)| *kind == k).count();
        assert_eq!(count(Kind::Relation), 2);
        assert_eq!(count(Kind::Function), 2);
        assert_eq!(count(Kind::Column), 5);
        assert_eq!(count(Kind::Operator), 1);
        let at = |needle: &str| sql.find(needle).unwrap() as i32;
        assert!(found.contains(&(Kind::Function, at("g("))));
        assert!(found.contains(&(Kind::Relation, at("u ON"))));
    }
}
