import random

from aiokafka.partitioner import DefaultPartitioner, murmur2

from stream.scoring import partitioning


def test_the_same_partition_as_the_java_client_for_any_key():
    rng = random.Random(5)
    keys = [bytes(rng.randrange(256) for _ in range(rng.randrange(0, 70))) for _ in range(3000)]
    keys += [b"", b"a", b"ab", b"abc", b"abcd", "ünïcode-αλ".encode()]
    assert partitioning.murmur2(keys).tolist() == [murmur2(k) for k in keys]
    partitioner = DefaultPartitioner()
    for n in (1, 4, 7, 32):
        expected = [partitioner(k, list(range(n)), list(range(n))) for k in keys]
        assert partitioning.partitions_for(keys, n) == expected
