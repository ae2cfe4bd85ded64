/* test_graph.c — the walkers on graphs built by hand: a parameter read by two operators
 * (gradients accumulate; ready after its last reader), the ready order, batch rows below
 * the capacity, empty batches, forward_until, and that H·v leaves the gradient alone. */
#include <math.h>

#include "engine_check.h"
#include "dptrain/activation.h"

enum { D = 3 };

/* y1 = x W^T, h = tanh(y1), y2 = h W^T + b, loss ℓ2. W [D, D] read twice.
 * flat: W at 0 (9), b at 9 (3). */
typedef struct twice {
  dpt_graph *g;
  dpt_act_attr at;
  dpt_loss_attr la;
  int x, W, b, loss;
} twice;

static void make_twice(twice *t, dpt_dtype dt, int64_t capacity) {
  t->at = (dpt_act_attr){DPT_ACT_TANH, false};
  t->la = (dpt_loss_attr){DPT_LOSS_L2};
  int y1, h, y2;
  assert_dpt_ok(dpt_graph_create(dt, &t->g));
  assert_dpt_ok(dpt_graph_input(t->g, D, &t->x));
  assert_dpt_ok(dpt_graph_param(t->g, D, D, 0, &t->W));
  assert_dpt_ok(dpt_graph_param(t->g, 1, D, 9, &t->b));
  int in1[2] = {t->x, t->W};
  assert_dpt_ok(dpt_graph_op(t->g, &dpt_op_linear, in1, 2, true, 0, D, false, NULL, &y1));
  assert_dpt_ok(dpt_graph_op(t->g, &dpt_op_act, &y1, 1, true, 0, D, false, &t->at, &h));
  int in2[3] = {h, t->W, t->b};
  assert_dpt_ok(dpt_graph_op(t->g, &dpt_op_linear, in2, 3, true, 0, D, false, NULL, &y2));
  assert_dpt_ok(dpt_graph_op(t->g, &dpt_op_loss, &y2, 1, false, 1, 1, true, &t->la, &t->loss));
  assert_dpt_ok(dpt_graph_finalize(t->g, capacity));
}

typedef struct ready_rec {
  size_t off[4];
  int n;
} ready_rec;
static void rec(void *ctx, size_t offset, size_t count) {
  ready_rec *r = ctx;
  (void)count;
  if (r->n < 4) r->off[r->n] = offset;
  r->n++;
}

static void test_shared_param(void **state) {
  (void)state;
  twice t;
  make_twice(&t, DPT_F64, 4);
  double X[4 * D], Y[4 * D], th[12];
  uint64_t s = 3;
  for (int i = 0; i < 4 * D; ++i) X[i] = test_rand(&s), Y[i] = test_rand(&s);
  for (int i = 0; i < 12; ++i) th[i] = test_rand(&s);
  dpt_targets y = {NULL, Y};
  dpt_graph_bind_input(t.g, t.x, X);
  t.g->run.y = &y;
  t.g->run.scale = 0.25;
  assert_check(check_graph(t.g, th, 12, 4), "W read twice");
  /* ready: b (last reader: the second linear) and W (last reader: the second linear too —
   * the first linear runs later in the backward pass, so W is final only after it) */
  double gr[12] = {0};
  ready_rec r = {{0}, 0};
  dpt_graph_bind_flat(t.g, th, gr, NULL, NULL);
  assert_dpt_ok(dpt_graph_forward(t.g));
  assert_dpt_ok(dpt_graph_backward(t.g, rec, &r));
  assert_int_equal(r.n, 2);
  assert_int_equal(r.off[0], 9); /* b first */
  assert_int_equal(r.off[1], 0); /* W after the first linear's vjp */
  dpt_graph_destroy(&t.g);
}

/* Rows below the capacity give bitwise the result of a graph built for those rows; 0 rows
 * give loss 0 and untouched gradients; forward_until stops before the loss. */
static void test_rows(void **state) {
  (void)state;
  twice big, small;
  make_twice(&big, DPT_F32, 8);
  make_twice(&small, DPT_F32, 3);
  float X[8 * D], Y[8 * D], th[12], g1[12] = {0}, g2[12] = {0};
  uint64_t s = 8;
  for (int i = 0; i < 8 * D; ++i) X[i] = (float)test_rand(&s), Y[i] = (float)test_rand(&s);
  for (int i = 0; i < 12; ++i) th[i] = (float)test_rand(&s);
  dpt_targets y = {NULL, Y};
  twice *gs[2] = {&big, &small};
  float *gr[2] = {g1, g2};
  for (int k = 0; k < 2; ++k) {
    dpt_graph *g = gs[k]->g;
    assert_dpt_ok(dpt_graph_set_rows(g, 3));
    dpt_graph_bind_input(g, gs[k]->x, X);
    dpt_graph_bind_flat(g, th, gr[k], NULL, NULL);
    g->run.y = &y;
    g->run.scale = 1;
    assert_dpt_ok(dpt_graph_forward(g));
    assert_dpt_ok(dpt_graph_backward(g, NULL, NULL));
  }
  assert_true(big.g->nodes[big.loss].loss == small.g->nodes[small.loss].loss);
  assert_memory_equal(g1, g2, sizeof g1);
  assert_dpt_fails(dpt_graph_set_rows(small.g, 4), DPT_ERR_INTERNAL, "capacity");
  /* empty batch */
  float g0[12] = {0};
  ready_rec r = {{0}, 0};
  assert_dpt_ok(dpt_graph_set_rows(big.g, 0));
  dpt_graph_bind_flat(big.g, th, g0, NULL, NULL);
  assert_dpt_ok(dpt_graph_forward(big.g));
  assert_dpt_ok(dpt_graph_backward(big.g, rec, &r));
  assert_true(big.g->nodes[big.loss].loss == 0.0);
  assert_int_equal(r.n, 2);
  for (int i = 0; i < 12; ++i) assert_true(g0[i] == 0.0f);
  /* forward_until the logits: the loss node is not evaluated (its targets may be absent) */
  big.g->nodes[big.loss].loss = -1;
  big.g->run.y = NULL;
  assert_dpt_ok(dpt_graph_set_rows(big.g, 2));
  assert_dpt_ok(dpt_graph_forward_until(big.g, big.loss - 1));
  assert_true(big.g->nodes[big.loss].loss == -1);
  dpt_graph_destroy(&big.g);
  dpt_graph_destroy(&small.g);
}

/* H·v accumulates into hv (+=) with scale applied, and does not touch the gradient. */
static void test_hvp_accumulates(void **state) {
  (void)state;
  twice t;
  make_twice(&t, DPT_F64, 2);
  double X[2 * D] = {0.1, -0.3, 0.5, 0.7, 0.2, -0.4}, Y[2 * D] = {0.3, 0.1, -0.2, 0.5, 0.4, 0.0}, th[12], v[12];
  double hv1[12] = {0}, hv2[12];
  uint64_t s = 21;
  for (int i = 0; i < 12; ++i) th[i] = test_rand(&s), v[i] = test_rand(&s), hv2[i] = 1.0;
  dpt_targets y = {NULL, Y};
  dpt_graph_bind_input(t.g, t.x, X);
  t.g->run.y = &y;
  t.g->run.scale = 1;
  dpt_graph_bind_flat(t.g, th, NULL, v, hv1);
  assert_dpt_ok(dpt_graph_hvp(t.g));
  t.g->run.scale = 2;
  dpt_graph_bind_flat(t.g, th, NULL, v, hv2);
  assert_dpt_ok(dpt_graph_hvp(t.g));
  /* hv2 = 1 + 2 hv1: the scale is a power of two, so equal up to the one rounding of the +1 */
  for (int i = 0; i < 12; ++i) assert_true(fabs(hv2[i] - (1 + 2 * hv1[i])) <= 4e-16 * fabs(hv2[i]));
  dpt_graph_destroy(&t.g);
}

static void test_build_errors(void **state) {
  (void)state;
  dpt_graph *g;
  int x, y;
  assert_dpt_ok(dpt_graph_create(DPT_F32, &g));
  assert_dpt_ok(dpt_graph_input(g, 4, &x));
  int bad = 5;
  assert_dpt_fails(dpt_graph_op(g, &dpt_op_maxout, &bad, 1, true, 0, 2, false, NULL, &y), DPT_ERR_INTERNAL, "input 0");
  assert_dpt_fails(dpt_graph_param(g, 1 << 20, 1 << 20, 0, &y), DPT_ERR_INPUT, "graph node");
  assert_dpt_fails(dpt_graph_finalize(g, (int64_t)1 << 30), DPT_ERR_INPUT, "batch");
  dpt_graph_destroy(&g);
  assert_null(g);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_shared_param),
      cmocka_unit_test(test_rows),
      cmocka_unit_test(test_hvp_accumulates),
      cmocka_unit_test(test_build_errors),
  };
  return dpt_test_run(tests);
}
