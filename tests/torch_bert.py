"""A small BERT-style encoder written in torch, for the transformer importer tests and benchmarks.

    factory, feeds = models("test")["bert"]
    module = factory()                      # torch.nn.Module in eval mode
    module(*feeds.values())                 # [batch, hidden] pooled output

The module takes input_ids (int64 [batch, seq]) and attention_mask (int64 [batch, seq],
1 = a real token, 0 = padding) and follows BERT: word + position + token-type embeddings
and a LayerNorm, then encoder layers of multi-head self-attention (padding masked out of
the keys) and a GELU feed-forward block, each with a residual and a post-LayerNorm;
the output is the masked mean of the tokens (pooling="mean") or the first token ("cls").
"""
import math

import torch
from torch import nn


class SelfAttention(nn.Module):
    def __init__(self, hidden, heads, mask_style="fill"):
        super().__init__()
        self.heads, self.head_dim = heads, hidden // heads
        self.mask_style = mask_style
        self.query = nn.Linear(hidden, hidden)
        self.key = nn.Linear(hidden, hidden)
        self.value = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, hidden)

    def split(self, x):
        # [B, S, H] -> [B, heads, S, head_dim]
        b, s, _ = x.shape
        return x.view(b, s, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, mask):
        b, s, h = x.shape
        q, k, v = self.split(self.query(x)), self.split(self.key(x)), self.split(self.value(x))
        scores = q @ k.transpose(-1, -2) / math.sqrt(self.head_dim)
        # mask [B, S] -> [B, 1, 1, S]: padded keys get a large negative score, by
        # masked_fill (Equal + Where), by adding (1 - mask) * finfo.min as Hugging Face's
        # BERT did (Cast, Sub from a constant, Mul, Add), or by index arithmetic as its
        # current mask functions do (arange, batch * S + position, gather, comparisons)
        if self.mask_style == "additive":
            extended = (1.0 - mask[:, None, None, :].to(scores.dtype)) * torch.finfo(scores.dtype).min
            scores = scores + extended
        elif self.mask_style == "indexed":
            batch = torch.arange(b)[:, None, None, None]
            key = torch.arange(s)[None, None, None, :]
            keep = mask.bool().flatten()[(batch * s + key).reshape(-1)].reshape(b, 1, 1, s) & (key >= 0)
            scores = scores.masked_fill(~keep, -1e9)
        else:
            scores = scores.masked_fill(mask[:, None, None, :] == 0, -1e9)
        context = torch.softmax(scores, dim=-1) @ v
        return self.out(context.transpose(1, 2).reshape(b, s, h))


class EncoderLayer(nn.Module):
    def __init__(self, hidden, heads, ffn, mask_style="fill"):
        super().__init__()
        self.attention = SelfAttention(hidden, heads, mask_style)
        self.norm1 = nn.LayerNorm(hidden, eps=1e-12)
        self.ffn_in = nn.Linear(hidden, ffn)
        self.ffn_out = nn.Linear(ffn, hidden)
        self.norm2 = nn.LayerNorm(hidden, eps=1e-12)

    def forward(self, x, mask):
        x = self.norm1(x + self.attention(x, mask))
        return self.norm2(x + self.ffn_out(nn.functional.gelu(self.ffn_in(x))))


class Bert(nn.Module):
    def __init__(self, vocab=1000, hidden=64, heads=4, layers=2, ffn=None, max_positions=512,
                 pooling="mean", mask_style="fill"):
        super().__init__()
        self.word = nn.Embedding(vocab, hidden)
        self.position = nn.Embedding(max_positions, hidden)
        self.token_type = nn.Embedding(2, hidden)
        self.norm = nn.LayerNorm(hidden, eps=1e-12)
        self.layers = nn.ModuleList(EncoderLayer(hidden, heads, ffn or 4 * hidden, mask_style)
                                    for _ in range(layers))
        self.register_buffer("position_ids", torch.arange(max_positions)[None, :], persistent=False)
        self.pooling = pooling

    def forward(self, input_ids, attention_mask):
        seq = input_ids.shape[1]
        positions = self.position_ids[:, :seq]
        # one segment: every token has token type 0
        x = self.word(input_ids) + self.position(positions) + self.token_type.weight[0]
        x = self.norm(x)
        for layer in self.layers:
            x = layer(x, attention_mask)
        if self.pooling == "cls":
            return x[:, 0]
        keep = attention_mask.unsqueeze(-1).to(x.dtype)
        return (x * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)


def example_feeds(batch, seq, vocab, seed=0):
    """{input_ids, attention_mask} with the later sequences padded (mask 0) at the end."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, vocab, (batch, seq), generator=generator)
    mask = torch.ones(batch, seq, dtype=torch.int64)
    for row in range(1, batch):
        length = max(1, seq - (row * seq) // (batch + 1))
        mask[row, length:] = 0
        ids[row, length:] = 0
    return {"input_ids": ids, "attention_mask": mask}


SIZES = {"test": dict(vocab=1000, hidden=64, heads=4, layers=2, batch=2, seq=16),
         "bench": dict(vocab=8000, hidden=256, heads=4, layers=4, batch=8, seq=128)}


def models(size="test", pooling="mean", mask_style="fill"):
    """{"bert": (factory, example_feeds)}: factory() builds the seeded module in eval mode,
    example_feeds is {"input_ids": int64 [batch, seq], "attention_mask": int64 [batch, seq]}.
    pooling: "mean" (masked mean of the tokens) or "cls" (the first token); mask_style:
    how attention ignores padded keys -- "fill" (masked_fill), "additive" (adding
    (1 - mask) * finfo.min, older Hugging Face BERT) or "indexed" (index arithmetic with
    arange and a gather, as current Hugging Face mask functions)."""
    s = SIZES[size]

    def factory():
        torch.manual_seed(0)
        module = Bert(s["vocab"], s["hidden"], s["heads"], s["layers"], pooling=pooling,
                      mask_style=mask_style)
        # fresh LayerNorms are all ones / zeros (an exporter then shares one initializer
        # among them, and a wrong scale or shift would go unnoticed): make each distinct
        with torch.no_grad():
            for layer in module.modules():
                if isinstance(layer, nn.LayerNorm):
                    layer.weight.add_(0.1 * torch.randn_like(layer.weight))
                    layer.bias.add_(0.1 * torch.randn_like(layer.bias))
        return module.eval()

    return {"bert": (factory, example_feeds(s["batch"], s["seq"], s["vocab"]))}
