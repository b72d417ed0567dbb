"""Masked language models: a BERT-style encoder with learned, sinusoidal or rotary positions, beside
transformers' BertForMaskedLM / RoFormerForMaskedLM and its fill-mask pipeline."""
