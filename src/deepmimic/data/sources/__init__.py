"""Dataset readers, one file per on-disk format; each returns ImageDataset / TrainTest."""
