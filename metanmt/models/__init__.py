"""Models: the seq2seq translation transformer (:mod:`.seq2seq`) and the Conv-4 image backbones."""
