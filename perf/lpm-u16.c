// A model for issue 14 (perf/RESULTS.md, "a Poptrie lookup index"): DIR-24-8 with 32-bit and
// 16-bit entries, same routes and addresses, timed interleaved, to see what 2-byte entries buy.
// gcc -O2 -o /tmp/lpm-u16 perf/lpm-u16.c && /tmp/lpm-u16 out/perf-real/routes.txt out/perf-real/ips.txt 9
// Values are taken mod 16000 so they fit 15 bits; both tables must answer the same.
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <x86intrin.h>
#define T24 (1u<<24)
typedef struct { uint32_t a; int len; uint32_t v; } R;
static int cmp(const void*x,const void*y){const R*a=x,*b=y;return a->len-b->len;}
#define BUILD(T, EXT) \
static T *t24_##T, *t8_##T; \
static void build_##T(R*r,int n){ t24_##T=calloc(T24,sizeof(T)); t8_##T=calloc(32768*256,sizeof(T)); uint32_t g=0; \
 for(int i=0;i<n;i++){ T e=(T)(r[i].v+1); if(r[i].len<=24){uint32_t s=r[i].a>>8,c=1u<<(24-r[i].len); \
   for(uint32_t j=s;j<s+c;j++){ if(t24_##T[j]&EXT){T*gg=t8_##T+(t24_##T[j]&~EXT)*256; for(int k=0;k<256;k++)gg[k]=e;} else t24_##T[j]=e;} } \
  else { uint32_t s=r[i].a>>8; if(!(t24_##T[s]&EXT)){T cur=t24_##T[s]; for(int k=0;k<256;k++)t8_##T[g*256+k]=cur; t24_##T[s]=EXT|g; g++;} \
   T*gg=t8_##T+(t24_##T[s]&~EXT)*256; uint32_t lo=r[i].a&255,c=1u<<(32-r[i].len); for(uint32_t k=lo;k<lo+c;k++)gg[k]=e; } } \
 fprintf(stderr,"%s: %u groups\n",#T,g);} \
static __attribute__((noinline)) void bulk_##T(const uint32_t*ip,uint32_t*out,int n){ \
 for(int k=0;k<8&&k<n;k++)_mm_prefetch((const char*)&t24_##T[ip[k]>>8],_MM_HINT_T0); \
 for(int b=0;b+8<=n;b+=8){ for(int k=b+8;k<b+16&&k<n;k++)_mm_prefetch((const char*)&t24_##T[ip[k]>>8],_MM_HINT_T0); \
  T e[8]; for(int k=0;k<8;k++)e[k]=t24_##T[ip[b+k]>>8]; \
  for(int k=0;k<8;k++){T x=e[k]; if(x&EXT)x=t8_##T[(x&~EXT)*256+(ip[b+k]&255)]; out[b+k]=x?x-1:~0u;} } }
BUILD(uint32_t, 0x80000000u)
BUILD(uint16_t, 0x8000u)
int main(int c,char**v){ FILE*f=fopen(v[1],"r"); R*r=malloc(sizeof(R)*600000); int n=0; char buf[128];
 while(fgets(buf,sizeof buf,f)){unsigned a,b,cc,d,l,h; if(sscanf(buf,"%u.%u.%u.%u/%u %u",&a,&b,&cc,&d,&l,&h)==6){r[n].a=a<<24|b<<16|cc<<8|d;r[n].len=l;r[n].v=h%16000;n++;}}
 fclose(f); qsort(r,n,sizeof(R),cmp);
 f=fopen(v[2],"r"); uint32_t*ip=malloc(4*1100000); int m=0; while(fgets(buf,sizeof buf,f)){unsigned a,b,cc,d; if(sscanf(buf,"%u.%u.%u.%u",&a,&b,&cc,&d)==4)ip[m++]=a<<24|b<<16|cc<<8|d;} fclose(f);
 build_uint32_t(r,n); build_uint16_t(r,n);
 uint32_t *o1=malloc(4*m),*o2=malloc(4*m); int runs=atoi(v[3]);
 for(int run=0;run<runs;run++){ uint64_t a1=0,a2=0;
  for(int b=0;b+64<=m;b+=64){uint64_t t=__rdtsc(); bulk_uint32_t(ip+b,o1+b,64); a1+=__rdtsc()-t;}
  for(int b=0;b+64<=m;b+=64){uint64_t t=__rdtsc(); bulk_uint16_t(ip+b,o2+b,64); a2+=__rdtsc()-t;}
  long bad=0; for(int i=0;i<m/64*64;i++) bad+=o1[i]!=o2[i];
  printf("run %d: u32 %.1f  u16 %.1f cycles/lookup  (mismatches %ld)\n",run,(double)a1/(m/64*64),(double)a2/(m/64*64),bad); }
}
