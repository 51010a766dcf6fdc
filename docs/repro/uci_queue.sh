#!/bin/bash
# usage: uci_queue.sh SET:LR ...   trains the thesis protocol runs that `bihm repro uci` adopts
. /work/main/.venv/bin/activate
export BIHM_HOME=/work/bihm-home OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
declare -A LAYERS=( [adult]=100,70,50,25 [connect4]=300,110,50,20 [dna]=200,150,130,100,70,50,30,20,10 [mushrooms]=150,100,90,60,40,20 [nips]=200,100,50,25 )
declare -A NTRAIN=( [adult]=5000 [connect4]=16000 [dna]=1400 [mushrooms]=2000 [nips]=400 )
for item in "$@"; do
  set_=${item%%:*}; lr=${item##*:}
  upe=$(( (NTRAIN[$set_] + 99) / 100 ))
  pat=$(( (1000 + upe - 1) / upe )); [ $pat -lt 10 ] && pat=10
  ze=$(( (500 + upe - 1) / upe )); [ $ze -lt 1 ] && ze=1
  ep=$(( (100000 + upe - 1) / upe ))
  name=uci-$set_-lr$lr-s0
  echo "$(date +%T) start $name patience=$pat z_every=$ze epochs=$ep"
  if [ -d $BIHM_HOME/runs/$name ]; then
    bihm train --resume $name -q
  else
    bihm train --data $set_ --layers ${LAYERS[$set_]} --lr $lr -K 10 --batch 100 --l1 1e-3 --patience $pat --z-every $ze --z-samples 1e5 --epochs $ep --seed 0 --name $name -q
  fi
  echo "$(date +%T) end $name rc=$?"
done
