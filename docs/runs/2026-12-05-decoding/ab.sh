# usage: ab.sh rounds bin1 bin2 ...
R=$1; shift
for r in $(seq $R); do for b in "$@"; do for rows in 1 8; do
  RAYON_NUM_THREADS=2 $b bench e2e --device cpu --inputs /tmp/bb/ids.json --workload generate --rows $rows --new-tokens 64 --json 2>/dev/null | python3 -c "
import json,sys; m=json.loads(sys.stdin.read()); print('$b', $rows, round(m['rows']*63/m['decode_seconds'],1))"
done; done; done
