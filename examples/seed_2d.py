"""The seed example: two spins, Hebbian parameters, then exact maximum likelihood.

Patterns (-1,-1), (-1,1), (1,-1), (1,1) are observed 3, 1, 2, 4 times. The Hebbian rule
gives b1 = <x1> = 0.2, b2 = <x2> = 0.0, W = <x1 x2> = 0.4. Exact training then drives
KL(P0 || P) to zero.

Run: python examples/seed_2d.py   (the same as `pgm-boltz seed`)
"""

from pgm_boltz.examples_seed import run

if __name__ == "__main__":
    run()
