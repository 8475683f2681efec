"""Greedy decoding with the KV cache equals decoding without it; batching changes nothing; the
allowed-token grammar holds; the dVAE's code grid matches the encoder's patch grid; sincos
positions are fixed codes that box coordinate tokens start from."""

import torch

from tables.dvae import DVAE
from tables.model import EncoderDecoder, ModelConfig, PatchEncoder, greedy_decode, sincos_2d
from tables.structure import is_well_formed, repair
from tables.vocab import BOS_BOX, BOS_STRUCT, EOS, TableVocab

CFG = ModelConfig(d_model=32, heads=4, encoder_layers=1, decoder_layers=2, ff=64, patch=16)


def _model(vocab, max_len=80):
    torch.manual_seed(0)
    return EncoderDecoder(CFG, 64, 64, vocab.size, max_len).eval()


def test_kv_cache_decoding_equals_uncached_decoding():
    vocab = TableVocab(64)
    model = _model(vocab)
    images = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    for task, bos, every in (("structure", BOS_STRUCT, 1), ("boxes", BOS_BOX, 4)):
        mask = vocab.allowed_mask(task)
        a, la = greedy_decode(model, images, bos, mask, 60, use_cache=True, stop_at_eos=False, eos_every=every)
        b, lb = greedy_decode(model, images, bos, mask, 60, use_cache=False, stop_at_eos=False, eos_every=every)
        assert a.shape == (3, 60) and torch.equal(a, b)
        assert torch.allclose(la, lb, atol=1e-4)
        # the grammar: every step obeys the allowed-token table
        assert mask[a[:, :-1].reshape(-1), a[:, 1:].reshape(-1)].all()


def test_batched_decoding_equals_one_image_at_a_time():
    vocab = TableVocab(64)
    model = _model(vocab)
    images = torch.randint(0, 256, (3, 64, 64), dtype=torch.uint8)
    mask = vocab.allowed_mask("structure")
    batch, _ = greedy_decode(model, images, BOS_STRUCT, mask, 40)
    for i in range(3):
        one, _ = greedy_decode(model, images[i:i + 1], BOS_STRUCT, mask, 40)
        n = one.shape[1]
        assert torch.equal(batch[i, :n], one[0])
        assert (batch[i, n:] == 0).all()  # PAD after that row's EOS


def test_box_decoding_ends_only_after_whole_boxes_and_structures_repair_to_well_formed():
    vocab = TableVocab(64)
    model = _model(vocab)
    with torch.no_grad():  # push EOS up so that it is chosen whenever allowed
        model.decoder.head.bias[EOS] += 50
    images = torch.randint(0, 256, (2, 64, 64), dtype=torch.uint8)
    out, _ = greedy_decode(model, images, BOS_BOX, vocab.allowed_mask("boxes"), 40, eos_every=4)
    ends = [(row == EOS).nonzero()[0].item() - 1 for row in out]
    assert all(e % 4 == 0 for e in ends)  # tokens before EOS: whole boxes
    s, _ = greedy_decode(_model(vocab), images, BOS_STRUCT, vocab.allowed_mask("structure"), 40)
    assert all(is_well_formed(repair(vocab.decode_structure(row[1:].tolist()))) for row in s)


def test_training_lowers_the_loss():
    vocab = TableVocab(64)
    model = _model(vocab).train()
    images = torch.randint(0, 256, (4, 64, 64), dtype=torch.uint8)
    tokens = torch.tensor([vocab.encode_structure(["<tbody>", "<tr>", "<td>[]</td>", "</tr>", "</tbody>"])] * 4)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        loss = model.loss(images, tokens)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(loss) < 0.3 * first


def test_dvae_codes_one_per_patch():
    torch.manual_seed(0)
    dvae = DVAE(codebook=16, hidden=8, patch=16)
    images = torch.randint(0, 256, (2, 64, 64), dtype=torch.uint8)
    codes = dvae.codes(images)
    assert codes.shape == (2, 16) and int(codes.max()) < 16  # (64/16)^2 patches
    assert dvae.reconstruct(images).shape == (2, 32, 32)
    loss = dvae.loss(images, 1.0, 0.0, torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and dvae.embed.grad is not None


def test_sincos_positions_are_fixed_distinct_and_separate_rows_from_columns():
    pos = sincos_2d(4, 6, 32)
    assert pos.shape == (1, 24, 32)
    flat = pos[0]
    assert torch.cdist(flat, flat).add(torch.eye(24) * 1e3).min() > 0.1  # every patch has its own code
    # the column half is the same along a column, the row half the same along a row
    grid = flat.view(4, 6, 32)
    assert torch.equal(grid[0, :, :16], grid[3, :, :16]) and torch.equal(grid[:, 0, 16:], grid[:, 5, 16:])
    enc = PatchEncoder(ModelConfig(d_model=32, heads=4, encoder_layers=1, patch=16, pos_embedding="sincos"), 64, 96)
    assert "pos" not in enc.state_dict() and not any(p is enc.pos for p in enc.parameters())
    assert torch.equal(enc.pos, sincos_2d(4, 6, 32))


def test_sincos_coordinate_tokens_start_as_the_code_of_their_patch():
    vocab = TableVocab(64)
    cfg = ModelConfig(d_model=32, heads=4, encoder_layers=1, decoder_layers=1, ff=64, patch=16, pos_embedding="sincos")
    model = EncoderDecoder(cfg, 64, 64, vocab.size, 20, coords=(vocab.coord_offset, vocab.size))
    cols = model.encoder.pos[0].view(4, 4, 32)[0, :, :16]  # the column codes of the first patch row
    rows = model.encoder.pos[0].view(4, 4, 32)[:, 0, 16:]
    for col in range(4):
        tok = model.decoder.tok.weight[vocab.coord_offset + 16 * col]  # pixel 16*col is patch col's start
        assert torch.allclose(tok[:16], cols[col], atol=1e-6) and torch.allclose(tok[16:], rows[col], atol=1e-6)
