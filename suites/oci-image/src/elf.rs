//! Just enough ELF to tell a static executable from a dynamic one: a scratch
//! image has no dynamic loader, so a PT_INTERP segment means it cannot run.

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum ElfError {
    #[error("read it as a 64-bit little-endian ELF executable")]
    NotElf64,
    #[error(
        "use it in a scratch image: it is dynamically linked (has an interpreter); build with -C target-feature=+crt-static"
    )]
    Dynamic,
}

fn read<const N: usize>(bytes: &[u8], at: usize) -> Result<[u8; N], ElfError> {
    bytes.get(at..at + N).and_then(|s| s.try_into().ok()).ok_or(ElfError::NotElf64)
}

pub(crate) fn require_static(bytes: &[u8]) -> Result<(), ElfError> {
    if bytes.get(..4) != Some(b"\x7fELF") || bytes.get(4) != Some(&2) || bytes.get(5) != Some(&1) {
        return Err(ElfError::NotElf64);
    }
    let phoff = usize::try_from(u64::from_le_bytes(read(bytes, 0x20)?)).map_err(|_| ElfError::NotElf64)?;
    let phentsize = usize::from(u16::from_le_bytes(read(bytes, 0x36)?));
    let phnum = usize::from(u16::from_le_bytes(read(bytes, 0x38)?));
    const PT_INTERP: u32 = 3;
    for i in 0..phnum {
        if u32::from_le_bytes(read(bytes, phoff + i * phentsize)?) == PT_INTERP {
            return Err(ElfError::Dynamic);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_non_elf_input() {
        assert_eq!(require_static(b"#!/bin/sh\n"), Err(ElfError::NotElf64));
    }

    #[test]
    fn finds_the_interpreter_of_a_dynamic_binary() {
        // /bin/sh on this kind of machine is dynamically linked.
        let sh = std::fs::read("/bin/sh").expect("read /bin/sh");
        assert_eq!(require_static(&sh), Err(ElfError::Dynamic));
    }
}
