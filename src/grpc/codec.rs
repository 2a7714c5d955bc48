//! The protobuf codec of every Switchboard service and client: prost's,
//! with 1 KiB buffers where tonic's default is 8 KiB.
//!
//! Each open stream keeps an encoding and a decoding buffer for its whole
//! life, and an agent's session or a bridge's session lives all day. With
//! 15,000 agents signed in, 8 KiB buffers alone came to 16 KiB per session;
//! Switchboard's messages are a few hundred bytes, and a buffer grows when a
//! larger one (a long list) passes.

use std::marker::PhantomData;
use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// Bytes each encoding and decoding buffer starts with.
const BUFFER_BYTES: usize = 1024;

/// Bytes encoded before a stream yields to other work (tonic's default).
const YIELD_THRESHOLD: usize = 32 * 1024;

/// Prost's codec with small starting buffers; named by `build.rs` as the
/// codec of the generated services and clients.
#[derive(Debug, Clone)]
pub struct SmallBufferCodec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for SmallBufferCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

/// The buffers' settings.
fn settings() -> BufferSettings {
    BufferSettings::new(BUFFER_BYTES, YIELD_THRESHOLD)
}

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstCodec::<T, U>::raw_encoder(settings())
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(settings())
    }
}
