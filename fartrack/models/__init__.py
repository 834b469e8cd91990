"""The FARTrack network, its vocabulary, sparsification rules, builders and checkpoint I/O."""

from fartrack.models.encoder import EncoderOutput, FARTrackNet, NetConfig
from fartrack.models.sparsify import SparsifyConfig
from fartrack.models.vocab import Vocabulary

__all__ = ["EncoderOutput", "FARTrackNet", "NetConfig", "SparsifyConfig", "Vocabulary"]
