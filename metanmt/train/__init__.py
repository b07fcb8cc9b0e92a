"""Training: meta-training and the multilingual baseline (:mod:`.trainer`), fine-tuning (:mod:`.finetune`)."""
