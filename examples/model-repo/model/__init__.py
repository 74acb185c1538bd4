"""The example model: data, training, the quality gate. Replace the insides, keep the contracts
(`python -m model.train --out out/` writes out/model.json; `python -m model.gate` exits non-zero
on a worse model) and the pipeline keeps working."""
